r"""Prepares a dataset for pod-scale training: sharded TFRecord files read by file on every host.

  python scripts/prepare_data.py --out=gs://bucket/lsun64 \
      --gin_param="dataset.source = 'folder'" --gin_param="dataset.path = '/data/lsun'" \
      --gin_param="dataset.resolution = 64" [--num_files=512] [--encoding=png]

Loads the source as training would (the same `dataset.*` bindings, so every image is checked and
cropped/resized once, here), then writes it in order as `data-XXXXX-of-YYYYY.tfrecord` files and a
`tfadvgan_data.json` metadata file (count, shape, dtype, classes), written last. Train on it with
`dataset.source = 'tfrecord'` and `dataset.path = OUT`.
"""

from absl import flags

from tfadvgan.cli import common

flags.DEFINE_string("out", None, "Output directory (required; new or empty; any TF "
                    "filesystem path).")
flags.DEFINE_string("split", "train", "Split of the source to prepare.")
flags.DEFINE_integer("num_files", None, "Number of record files (default: one per 5000 "
                     "examples). Use at least as many as the hosts that will read them.")
flags.DEFINE_enum("encoding", "png", ["png", "raw"], "Image encoding: png (lossless, smaller) or "
                  "raw (no decoding when read). Floating point data is always raw.")
common.define_gin_flags()
FLAGS = flags.FLAGS


@common.main_wrapper
def main(argv):
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.out, "--out is required: the directory to write the prepared data to.")
  common.parse_gin(FLAGS.gin_file, FLAGS.gin_param)
  source = data_lib.load(split=FLAGS.split)
  meta = data_lib.write_records(source, FLAGS.out, num_files=FLAGS.num_files,
                                encoding=FLAGS.encoding)
  common.print_outputs(
      f"wrote {meta['num_examples']} examples of {source.name!r} ({FLAGS.split}), shape "
      f"{tuple(meta['shape'])} {meta['dtype']}, in {len(meta['files'])} file(s)",
      [("directory", FLAGS.out),
       ("train on it", f"--gin_param=\"dataset.source = 'tfrecord'\" "
                       f"--gin_param=\"dataset.path = '{FLAGS.out}'\"")])


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
