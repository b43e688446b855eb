"""Teacher factory (timm), semantic decoder heads and baseline networks."""
