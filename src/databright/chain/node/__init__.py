"""chain/node."""
