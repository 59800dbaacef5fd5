"""Offline side of the project: data, GAN training, evaluation and their command line."""
