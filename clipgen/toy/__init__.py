"""The offline toy world: procedurally drawn, captioned shapes, and models trained on them."""
