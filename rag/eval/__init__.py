"""Evaluation: gold files, scoring, public benchmarks and reports."""
