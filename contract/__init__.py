"""What the console's processes share: the wire protocol, the status codes, the commands and their argument
rules, the text and name rules, the NHI reader's slot names and the stream positions.

api/, broker/ and workers/ import this package; it imports none of them (and nothing heavier than the standard
library), so an API process or a reader worker loads no broker internals to speak to the broker."""
