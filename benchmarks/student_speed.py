"""Seconds per training step and per decoded token of the student, alone and teamed with the
ML decoder (issue 14), on a 10-column generic table.

    python benchmarks/student_speed.py [--pretrained]

Fine-tuning: 5 steps of 8 sequences; sampling: 16 rows unmasked, as a fit's student step draws
them; teaming: the beam search of 12 searched points x beam 3 (the quick preset's sizes),
masked.  "Per decoded token" divides by rows x decoding steps (every row is computed at
every step, finished or not).  Run it on one idle machine; it prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", action="store_true", help="start the student from its pre-training")
    args = parser.parse_args()

    from featteam.decoding import MixtureSource, beam_search
    from featteam.explore import Explorer
    from featteam.expr import Grammar, Vocabulary
    from featteam.models.latent import LatentConfig, LatentModel
    from featteam.models.student import Student, StudentConfig, student_prompt

    width = 10
    vocab = Vocabulary(width)
    grammar = Grammar(vocab)
    explorer = Explorer(width, grammar.max_length, grammar.max_features, grammar.max_feature_length, random_state=0)
    sequences = [explorer.random() for _ in range(40)]
    scores = list(np.random.default_rng(0).random(len(sequences)))
    student = Student(vocab, student_prompt("regression", "target", width), StudentConfig(max_epochs=1, seed=0))
    if args.pretrained:
        from featteam.models.pretrain import PretrainConfig, ensure_pretrained

        student.start_from(ensure_pretrained(None, PretrainConfig.for_student(student.config)).directory)
    result: dict = {"torch_threads": torch.get_num_threads(), "pretrained": args.pretrained}

    start = time.perf_counter()
    student.finetune(sequences, scores)
    result["finetune_seconds_per_step"] = round((time.perf_counter() - start) / student.metrics.steps, 3)

    start = time.perf_counter()
    rows = student.sample(16, grammar, masked=False, seed=1)
    seconds = time.perf_counter() - start
    steps = max(len(r.tokens) for r in rows)
    result["student_sampling_seconds"] = round(seconds, 2)
    result["student_seconds_per_token"] = round(seconds / (16 * steps), 5)
    result["student_rows_ended"] = sum(r.finished for r in rows)

    latent = LatentModel(vocab, LatentConfig(max_epochs=10, seed=0)).fit(sequences, scores)
    points = latent.search(sequences[:4], step_sizes=(1.0, 3.0, 5.0))
    start = time.perf_counter()
    beams = beam_search(MixtureSource([latent.source(points), student.source()], [0.5, 0.5]), len(points), grammar,
                        beam=3, masked=True)
    seconds = time.perf_counter() - start
    steps = max(len(b.token_ids) for row in beams for b in row)
    result["teaming_seconds"] = round(seconds, 2)
    result["teaming_seconds_per_token"] = round(seconds / (len(points) * 3 * steps), 5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
