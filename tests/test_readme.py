"""The README's tour shows the planner's real output for the design card, line for line."""

from pathlib import Path

from planner.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
CARD = "$ hbmplan --tpu v4-8 --model Qwen2.5-7B --bs 32 --len 1024\n"


def test_readme_tour_is_the_design_cards_output(capsys):
    text = README.read_text()
    start = text.index(CARD) + len(CARD)
    block = text[start:text.index("```", start)]
    code = main(["--tpu", "v4-8", "--model", "Qwen2.5-7B", "--bs", "32", "--len", "1024"])
    assert code == 3  # the seed's OOM: the verdict exits non-zero
    assert capsys.readouterr().out.rstrip("\n") == block.rstrip("\n")


def test_readme_band_note_is_the_micro_batch_plans(capsys):
    """The band note the README quotes for the design card's micro-batch is that plan's own, today."""
    main(["--tpu", "v4-8", "--model", "Qwen2.5-7B", "--bs", "32", "--len", "1024", "--micro-bs", "4",
          "--workload", "train"])
    note = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("note: step estimate against XLA:TPU"))
    assert "over 10 compiles" in note
    quoted = [line for line in README.read_text().splitlines()
              if line.startswith("note: step estimate against XLA:TPU") and "forward's start" in line]
    assert quoted == [note]
