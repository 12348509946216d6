"""The client SDK: experiments, the read API, the background sender, offline archives and autolog.

Nothing here imports server code; the embedded (local) transport calls the service layer directly.
"""
