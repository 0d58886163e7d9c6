"""Sans-IO stream codecs: Server-Sent Events and Gemini's streamed JSON array."""
