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
