# The two commands of the README. Both set up .venv first (scripts/setup.sh; skipped when done).
VENV ?= .venv
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo finetune-demo rewrite-demo test test-fast lint

setup:
	@bash scripts/setup.sh

# The main job on samples/ with the embedded defaults: outputs under out/.
demo: setup
	$(VENV)/bin/augment expand samples/zh_bank_intents/seeds.jsonl --unlabeled samples/zh_bank_intents/unlabeled.jsonl -o out/zh_bank_intents --overwrite
	$(VENV)/bin/augment expand samples/en_clinic_triage/seeds.jsonl --unlabeled samples/en_clinic_triage/unlabeled.jsonl -o out/en_clinic_triage --overwrite
	$(VENV)/bin/augment expand samples/zh_instructions/seeds.jsonl -o out/zh_instructions --overwrite
	@echo "Outputs: out/zh_bank_intents/, out/en_clinic_triage/, out/zh_instructions/ (augmented.jsonl, rejected.jsonl, manifest.json)"

# Back-translation and paraphrase with the embedded defaults (Apertium for English, the embedded LLM
# for Chinese: several minutes on 2 cores).
rewrite-demo: setup
	$(VENV)/bin/augment expand samples/en_clinic_triage/seeds.jsonl -m backtranslate,paraphrase -o out/rewrite_en --overwrite
	$(VENV)/bin/augment expand samples/zh_bank_intents/seeds.jsonl -m backtranslate,paraphrase -o out/rewrite_zh --overwrite

# Did augmentation help? Needs `make demo`'s outputs. The fast frozen-embedding recipe on both
# classification sets (about a minute each), then an English LoRA adapter on MiniLM (a few minutes).
finetune-demo: setup
	$(VENV)/bin/augment evaluate out/en_clinic_triage --method embedding -k 5 -o out/en_clinic_triage/evaluate.json
	$(VENV)/bin/augment evaluate out/zh_bank_intents --method embedding -k 5 -o out/zh_bank_intents/evaluate.json
	$(VENV)/bin/augment finetune out/en_clinic_triage -o out/en_clinic_triage/lora --overwrite --dev-fraction 0.2

test: setup
	$(VENV)/bin/python -m pytest -q

# The model-free layer (fake generator, hashing embedder), without the tests that start a Ray cluster:
# about a minute; `make test` runs everything.
test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not models and not ray"

lint: setup
	$(VENV)/bin/ruff check augment cli finetune tests
