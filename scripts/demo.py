"""`make demo`: the end-to-end example DAGs, for real, offline, in about a minute.

Starts the bundled Camb.ai API emulator on a free loopback port and, with ``airflow dags test``
on the embedded SQLite DB:

1. seeds a dozen TTS tasks that finish after a few polls and runs ``example_camb_tts_to_storage``
   (sensor, deferred -> bulk results -> transfer to ``file://``);
2. writes the chapters of a short story as text files and runs ``example_camb_text_to_speech``
   (chapter files -> ``POST /tts-stream`` -> one audio file per chapter).

It prints what landed where. A second run finds every file in place and makes no download and
no tts-stream call. The emulator is stopped whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from airflow_provider_camb.testing import CambEmulator

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "example_camb_tts_to_storage"
TASK_COUNT = 12
TTS_DAG_ID = "example_camb_text_to_speech"
#: Seconds of emulator audio per character. The emulator's default, 0.06 s, is about the pace of
#: speech; a sixth of it keeps the demo's audio small and quick to stream.
STREAM_SECONDS_PER_CHAR = 0.01

# The demo's audiobook, written for it: four chapters of different lengths; chapter three is
# longer than one request takes (3,000 characters), so it is synthesised in segments and joined.
# Wrapped here for reading; _unwrap() gives one line per paragraph, as chapter files usually are.
CHAPTERS = {
    "chapter-01": """
Chapter One. The Last Lamp.

Harrow Street ran downhill from the chapel to the river, and every evening for thirty-one years
Tobias Wren had walked it with a ladder on his shoulder and a brass wick-lighter in his hand. There
were forty lamps on the street. He knew each of them by its temper: the one by the baker's that
sulked in damp weather, the one at the corner that flared like a match, the tall one by the bridge
that the children called the Admiral.

His daughter Mara walked with him. She was eleven, and she carried the oil can, and she counted
the lamps aloud so that her father would not have to. When they reached the Admiral she was
allowed to climb the ladder and light it herself, and the whole river seemed to lean towards the
new flame.

That autumn the town put up poles of a different kind along the high road. They were grey and
smooth and had no doors, no wicks and no need of anyone. At dusk they woke all at once, with a
faint hum, as though somebody far away had simply decided it was night.
""",
    "chapter-02": """
Chapter Two. The Letter.

The letter came on a Tuesday, in an envelope so stiff that it stood up on the table by itself.
Mara's father read it twice, folded it along its creases, and put it behind the clock on the
mantelpiece, which was where the family kept things that were not to be talked about.

Mara read it anyway, that night, by the light of the kitchen stove. The council thanked Mr Tobias
Wren for his long and faithful service. The council was pleased to inform him that Harrow Street
would be fitted with electric lighting before the first of December. The council regretted that
the position of lamplighter would, from that date, no longer be required. The council remained his
obedient servant. There were three signatures at the bottom, and none of them was a name she knew.

In the morning her father was cheerful in the careful way that grown-ups are cheerful when they
have decided something. He said that the electric lights were a fine thing, that they would never
blow out in a gale, and that the baker would be glad of a brighter corner. He said that a man of
his age deserved a rest. He polished the brass wick-lighter anyway, as he did every morning, and
hung it on its nail by the door.

The workmen arrived the following week. They dug holes beside the old lamp posts and lowered the
grey poles into them, one after another, working their way up the hill from the river. The Admiral
was the last to be given a neighbour. Mara watched from the bridge as they poured the concrete,
and she noticed that the new pole was a good deal shorter than the old one, as if it knew better
than to compete.

On the last evening of November Tobias Wren lit the forty lamps of Harrow Street for the final
time. He did not hurry. At the corner he waited for the flare to settle; at the baker's he coaxed
the sulking wick with a cupped hand. When they reached the bridge he handed Mara the lighter
without a word, and she climbed the ladder, and the Admiral burned for the river one more time.

They walked home in the dark. Behind them, one by one, the old lamps ran out of oil and went quiet.
""",
    "chapter-03": """
Chapter Three. The Long Night.

The electric lights came on the next evening exactly as promised. They were very bright and very
white, and they made Harrow Street look like a photograph of itself. The baker said it was like
living inside a refrigerator, but he said it quietly, and he said it smiling. People stopped at
their windows to look, and then, after a few days, they stopped stopping.

Mara did not like them. She could not have said why, except that they were all exactly the same,
and they came on without anybody walking anywhere, and nobody said goodnight to them. Her father
had taken to sitting by the stove in the evenings with a book he did not read. Sometimes, around
dusk, he would glance at the nail by the door where the brass lighter hung, and then he would turn
a page.

The storm arrived in the second week of December. It came up the river from the sea in the early
afternoon, first as a grey smudge on the water and then as a wall of rain that hit the town
sideways. By four o'clock the chapel bell was ringing by itself in the wind. By five o'clock the
river had climbed halfway up the steps below the bridge, and the men from the boatyard were out in
oilskins, roping the barges together.

At a quarter past five the electric lights went out.

They did not flicker or fade. They simply stopped, all forty of them at once, and the whole of
Harrow Street fell into a darkness so complete that Mara, standing at the kitchen window, could no
longer see the rain. Somewhere down the hill a woman called out a name. A cart horse, frightened,
began to stamp and scream. From the river came the sound of men shouting to each other, and then
a long, low groan of timber as one of the barges swung against the bridge.

Her father was already on his feet. He took the lighter from its nail, and the ladder from the
yard, and he looked at Mara, and she fetched the oil can without being asked. Her mother said
something about the cold and the hour and the state of the roads, and then she said nothing at all
and wound a scarf twice around Mara's neck and tucked the ends into her coat.

The old lamp posts were still there. Nobody had bothered to take them down. The workmen had meant
to come back for them after Christmas, and so they stood beside their grey replacements like old
men waiting at a bus stop, patient and a little forgotten. Their glass was dirty and their wicks
were dry, but they were there.

They started at the top, by the chapel, because that was the way it had always been done. Mara
poured the oil with both hands while her father held his coat around the lamp to keep off the
rain. The first wick would not take. The second took and died. The third caught, and held, and a
small yellow circle opened on the wet cobbles, and inside it the rain was suddenly visible again,
falling in long silver threads.

They went on down the hill. Doors opened as they passed. The baker came out with a lantern of his
own and walked beside them, holding it high so that her father could see the latches. Two boys
from the boatyard took turns with the ladder. At the corner the lamp that always flared went up
like a firework, and somebody cheered, and the cheer was carried off by the wind before it was
finished.

By the time they reached the river there were thirty-nine lamps burning behind them, a trail of
small gold lights climbing all the way back up to the chapel. In their light the men on the bank
could see the barges at last. They could see which rope had parted and which post still held. They
could see the place where the water was pulling hardest, and they could stay out of it.

The Admiral was the last. The wind on the bridge was so strong that the ladder would not stand on
its own, and the two boys had to lean their whole weight against it. Her father put his foot on
the first rung, stopped, and stepped back down. He did not say anything. He just held out the
brass lighter, and Mara took it, and climbed.

At the top the rain was so loud that she could hear nothing else. Her fingers were numb and the
glass door of the lamp was stiff with rust. She pulled it open with both hands, and shielded the
wick with her body, and struck, and struck again. On the third try the flame caught. She closed the
little door very gently, as if the lamp were asleep, and looked down.

Below her the river was full of light. Every ripple carried a piece of the Admiral, and every
piece was moving towards the sea. On the bank the men had stopped shouting. One of them raised a
hand to her, and then another, and then the boys holding the ladder started laughing for no reason
at all, and she found that she was laughing too.
""",
    "chapter-04": """
Chapter Four. Morning.

The electric lights came back at six o'clock the next morning, long after they were needed. The
storm had gone out to sea in the night, and the street was washed clean and smelled of salt and
wet stone. The old lamps were still burning, pale and unnecessary in the daylight, and nobody on
Harrow Street could bring themselves to put them out.

In the spring the council sent another letter. It was not quite an apology, because councils do
not apologise, but it said that the old lamps of Harrow Street would remain in place, and that a
keeper would be required to maintain them in case of emergency, and that the position came with a
small salary and a new ladder.

Tobias Wren read it once, and laughed, and did not put it behind the clock. He gave it to Mara. She
read it twice, and then she went and took the brass lighter down from its nail, and polished it
until it shone.
""",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-home", type=Path, default=REPO / "airflow_home")
    parser.add_argument("--output", type=Path, default=REPO / "demo_output")
    parser.add_argument("--chapters", type=Path, help="where the chapter texts go (default: OUTPUT/chapters)")
    parser.add_argument(
        "--audiobook", type=Path, help="where the chapters' audio goes (default: OUTPUT/audiobook)"
    )
    args = parser.parse_args(argv)
    airflow_home: Path = args.airflow_home.resolve()
    output: Path = args.output.resolve()
    chapters: Path = (args.chapters or output / "chapters").resolve()
    audiobook: Path = (args.audiobook or output / "audiobook").resolve()
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = _airflow_env(airflow_home)

    _step(f"Preparing the Airflow metadata DB (SQLite in {_rel(airflow_home)})")
    migrate = _run_airflow(["db", "migrate"], env, airflow_home / "db-migrate.log")
    if migrate != 0:
        return _fail(f"`airflow db migrate` failed; see {_rel(airflow_home / 'db-migrate.log')}")

    with CambEmulator(api_key="demo-api-key") as emulator:
        # Chapters of different lengths that finish at different times, like a real batch.
        task_ids = [
            task_id
            for chapter in range(TASK_COUNT)
            for task_id in emulator.add_tts_tasks(
                1, pending_polls=2 + chapter % 3, duration_seconds=1.5 + 0.75 * chapter
            )
        ]
        _step(f"Camb.ai emulator at {emulator.base_url} with {len(task_ids)} TTS tasks in progress")
        env["AIRFLOW_CONN_CAMB_DEFAULT"] = emulator.connection_uri_json()
        conf = {"camb_task_ids": task_ids, "destination": output.as_uri() + "/"}
        log_path = airflow_home / "demo-dag-run.log"
        _step(f"Running `airflow dags test {DAG_ID}` (Airflow's own log: {_rel(log_path)})")
        started = time.monotonic()
        exit_code = _run_airflow(["dags", "test", DAG_ID, "--conf", json.dumps(conf)], env, log_path)
        elapsed = time.monotonic() - started
        if exit_code != 0:
            _print_tail(log_path)
            return _fail(f"the DAG run failed (exit code {exit_code}); full log: {_rel(log_path)}")
        summary = _summarise(emulator, task_ids, output, elapsed)
        if summary != 0:
            return summary

        _write_chapters(chapters)
        emulator.stream_seconds_per_char = STREAM_SECONDS_PER_CHAR
        emulator.clear_journal()
        _step(f"{len(CHAPTERS)} chapter texts in {_rel(chapters)}")
        conf = {"source": chapters.as_uri() + "/", "destination": audiobook.as_uri() + "/"}
        log_path = airflow_home / "demo-text-to-speech-run.log"
        _step(f"Running `airflow dags test {TTS_DAG_ID}` (Airflow's own log: {_rel(log_path)})")
        started = time.monotonic()
        exit_code = _run_airflow(["dags", "test", TTS_DAG_ID, "--conf", json.dumps(conf)], env, log_path)
        elapsed = time.monotonic() - started
        if exit_code != 0:
            _print_tail(log_path)
            return _fail(f"the DAG run failed (exit code {exit_code}); full log: {_rel(log_path)}")
        return _summarise_audiobook(emulator, audiobook, elapsed)


def _airflow_env(airflow_home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
    )
    return env


def _run_airflow(arguments: list[str], env: dict[str, str], log_path: Path) -> int:
    airflow = Path(sys.executable).with_name("airflow")
    with log_path.open("w") as log:
        return subprocess.call([str(airflow), *arguments], env=env, stdout=log, stderr=subprocess.STDOUT)


def _summarise(emulator: CambEmulator, task_ids: list[str], output: Path, elapsed: float) -> int:
    import soundfile

    api_calls = [entry for entry in emulator.journal if entry.path.startswith("/apis/")]
    # A ranged GET of one byte is a size check of a file already there, not a download.
    downloads = [
        entry
        for entry in emulator.journal
        if entry.endpoint == "download" and entry.method == "GET" and entry.range is None
    ]
    print()
    print(f"{'run ID':>8}  {'file':<28} {'size':>10}  {'duration':>8}")
    missing = []
    for task_id in task_ids:
        run_id = emulator.run_id_for_task(task_id)
        candidates = sorted(output.glob(f"{run_id}.*")) if run_id else []
        if not candidates:
            missing.append(run_id or task_id)
            continue
        path = candidates[0]
        info = soundfile.info(str(path))
        print(f"{run_id:>8}  {_rel(path):<28} {path.stat().st_size:>10,}  {info.duration:>7.2f}s")
    print()
    print(
        f"{len(task_ids) - len(missing)} audio files in {_rel(output)} after {elapsed:.0f} s; "
        f"{len(api_calls)} Camb.ai API calls "
        f"({len(emulator.requests('tts_status'))} status polls, {len(emulator.requests('tts_results'))} bulk "
        f"result calls), {len(downloads)} downloads."
    )
    if not downloads:
        print("Nothing was downloaded: every file was already there from an earlier run (idempotent re-run).")
    print(f"Play one: `ffplay {_rel(output)}/<run ID>.flac` or any audio player that reads FLAC.")
    if missing:
        return _fail(f"no file for {missing}")
    return 0


def _unwrap(text: str) -> str:
    """One line per paragraph, paragraphs apart by a blank line."""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in text.strip().split("\n\n")) + "\n"


def _write_chapters(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, text in CHAPTERS.items():
        (folder / f"{stem}.txt").write_text(_unwrap(text), encoding="utf-8")


def _summarise_audiobook(emulator: CambEmulator, audiobook: Path, elapsed: float) -> int:
    import soundfile

    from airflow_provider_camb.speech.segments import split_text

    calls = emulator.requests("tts_stream")
    print()
    print(f"{'chapter':<12} {'characters':>10} {'segments':>8}  {'file':<40} {'size':>10}  {'duration':>8}")
    missing = []
    for stem, text in CHAPTERS.items():
        path = audiobook / f"{stem}.flac"
        if not path.is_file():
            missing.append(stem)
            continue
        info = soundfile.info(str(path))
        # What is sent: the segments, whose whitespace is normalised (no trailing newline).
        segments = split_text(_unwrap(text))
        print(
            f"{stem:<12} {sum(map(len, segments)):>10,} {len(segments):>8}  {_rel(path):<40} "
            f"{path.stat().st_size:>10,}  {info.duration:>7.2f}s"
        )
    print()
    print(
        f"{len(CHAPTERS) - len(missing)} chapter audio files in {_rel(audiobook)} after {elapsed:.0f} s; "
        f"{len(calls)} tts-stream calls ({sum(len(entry.json['text']) for entry in calls):,} characters "
        "synthesised)."
    )
    if not calls:
        print("Nothing was synthesised: every chapter's audio was already there (idempotent re-run).")
    print(f"Listen: `ffplay {_rel(audiobook)}/chapter-03.flac` (its two segments, joined into one file).")
    if missing:
        return _fail(f"no audio file for {missing}")
    return 0


def _print_tail(log_path: Path, lines: int = 40) -> None:
    print("".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-lines:]), file=sys.stderr)


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _fail(message: str) -> int:
    print(f"demo failed: {message}", file=sys.stderr)
    return 1


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
