"""The configuration layer every file format shares: located YAML, problems, one ConfigError."""
