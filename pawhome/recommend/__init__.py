"""Recommendations: the personal post feed and "recommended for you" products, scored from
what a viewer engages with. docs/recommendations.md."""
