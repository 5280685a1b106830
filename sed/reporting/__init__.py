"""One plotting layer shared by training, evaluation, detection and the generator."""
