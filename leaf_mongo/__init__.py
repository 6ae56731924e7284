"""LEAF embedding models for MongoDB vector search."""
