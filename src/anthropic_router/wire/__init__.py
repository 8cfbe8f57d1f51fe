"""Wire models: the shapes of the Anthropic and OpenAI APIs, field names as the specs spell them."""
