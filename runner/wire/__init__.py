"""The wire: the only code that imports the openai SDK. Request shaping, the Chat Completions
and Responses parsers, the gateway every call takes (cache, rate limits, retries), the Batch
API, token counting, and the offline echo model with the OpenAI simulator behind it."""
