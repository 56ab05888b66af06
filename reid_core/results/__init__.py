"""Results layer: run records, published tables, comparison reports."""
