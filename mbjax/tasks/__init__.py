"""Task plug-ins for the trainer: model, data curriculum, loss and evaluators per task."""
