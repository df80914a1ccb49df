"""Serving: the recommender bundle folder and the MLflow pyfunc wrapper."""
