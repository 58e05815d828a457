"""Run the `hf-unlearn` CLI in this process with a fault injected: `python crash_cli.py MODE [CLI ARGS...]`.

MODE (the first three kill the process with SIGKILL: no clean-up, no atexit, no lock release but the kernel's):
  checkpoint-N   right after the checkpoint of step N is saved (state included);
  publish-K      during the final save, after K of its files were moved into output_dir (0: before the first);
  record-write   while a record is written (its temporary file is complete, the rename has not happened);
  hold:PATH      a job waits, holding its output_dir (lock taken, before its data is loaded), until PATH exists.
"""

import os
import signal
import sys


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(mode: str, argv: list[str]) -> int:
    if mode.startswith("checkpoint-"):
        from hf_unlearn.trainer.persistence import PersistenceMixin

        step, save = int(mode.split("-")[1]), PersistenceMixin._save_checkpoint

        def save_then_kill(self, model, trial):
            save(self, model, trial)
            if self.state.global_step == step:
                _kill()

        PersistenceMixin._save_checkpoint = save_then_kill
    elif mode.startswith("publish-"):
        from hf_unlearn.trainer import persistence

        moves, move_files = int(mode.split("-")[1]), persistence._move_files

        def move_some(staging, output_dir, old, new):
            real, done = os.replace, []

            def replace(src, dst):
                if len(done) == moves:
                    _kill()
                done.append(src)
                real(src, dst)

            os.replace = replace
            try:
                move_files(staging, output_dir, old, new)
            finally:
                os.replace = real

        persistence._move_files = move_some
    elif mode == "record-write":
        fsync = os.fsync

        def fsync_then_kill(fd):
            fsync(fd)
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
                _kill()

        os.fsync = fsync_then_kill
    elif mode.startswith("hold:"):
        import time

        from hf_unlearn.pipeline import run

        flag, prepare = mode.split(":", 1)[1], run.prepare

        def wait_then_prepare(*args, **kwargs):
            while not os.path.exists(flag):
                time.sleep(0.05)
            return prepare(*args, **kwargs)

        run.prepare = wait_then_prepare
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    from hf_unlearn.cli.main import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
