"""The data center: the `DataCenter` seam (`seam`), its HTTPS client (`client`) and the parsing of its answers
(`answers`). The NHI's own DC protocol is not public: what ships speaks docs/dc-protocol.md to the bench's DC."""
