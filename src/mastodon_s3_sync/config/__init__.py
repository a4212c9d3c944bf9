"""One typed settings model and its sources: flags, TOML, .env.production, MSS_* variables."""
