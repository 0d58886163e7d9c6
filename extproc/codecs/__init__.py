"""Sans-IO stream codecs: Server-Sent Events, Gemini's streamed JSON array, and the JSON
source text of tool-call arguments (``jsontext``: read and masked token by token)."""
