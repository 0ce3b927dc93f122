"""Flows: every card command and every multi-step operation, as generators that yield the steps they need
(`runner.CardStep`, `runner.DcCall`, `runner.Acquire`) and return the API's answer. The runner decides nothing."""
