"""The broker's domain: the events (past tense), the state they fold into, and the pure rules over that state
(which reader a card command goes to, what a worker's report means, the live stream's public view, replay)."""
