# SPIN model checks of the shared protocols (models/*.pml): every model
# must pass and every documented mutant must fail (scripts/models.sh).
# MODELS_ARGS=-f adds the larger instances; MODELS_ARGS="spsc bus" picks.
.PHONY: models
models:
	sh scripts/models.sh $(MODELS_ARGS)
