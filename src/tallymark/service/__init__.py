"""The service layer: one function per operation. HTTP routes, the SDK's local transport and the
compatibility adapters all call these; none of them holds business logic or SQL."""
