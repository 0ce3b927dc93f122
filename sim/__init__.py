"""The simulation bench (see ../shared/design/sim-control.md): virtual readers and cards,
and later the DC simulator and the test PKI. Production code never imports it."""
