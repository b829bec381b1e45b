r"""Trains the domain CNN used as the feature extractor of FID / IS / KID (scripts/eval.py).

  python scripts/train_classifier.py --out=classifiers/fmnist_cnn.keras [--name=fmnist_cnn] \
      [--dataset=idx] [--dataset_path=/usr/share/datasets/fashion-mnist] [--epochs=5] \
      [--adversarial --epsilon=0.1 --pgd_steps=7] [--gin_param=...]

Trains on the dataset's train split and reports clean accuracy on its test split (and, with
--adversarial, accuracy under an --eval_pgd_steps PGD attack at --epsilon). A source without a test
split (e.g. npz) holds out the last --holdout_fraction of its train split instead. Saves the
model with `save_domain_classifier` (OUT and OUT.json, whose metadata holds the name, `accuracy`,
and `pgd_accuracy` when adversarial).

The default --name is `<dataset>_cnn` (`fmnist_cnn` for Fashion-MNIST), plus `_madry` with
--adversarial; metrics computed with it are named after it (`fid_fmnist_cnn`, ...).
--gin_param sets `dataset.*` options and `train_domain_classifier.*` / `build_domain_cnn.*`
(e.g. width, feature_dim); the flags above take precedence.
"""

from absl import flags

from tfadvgan.cli import common

flags.DEFINE_string("out", None, "Output .keras file (required; its metadata goes to "
                    "OUT.json).")
flags.DEFINE_string("name", None, "Classifier name used in metric names (default: "
                    "<dataset>_cnn[_madry]).")
flags.DEFINE_string("dataset", "idx", "Data source name (tfadvgan.data.SOURCES).")
flags.DEFINE_string("dataset_path", None, "dataset.path for local sources (idx default: "
                    "/usr/share/datasets/fashion-mnist).")
flags.DEFINE_integer("epochs", 5, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_bool("adversarial", False, "Madry et al. PGD adversarial training.")
flags.DEFINE_float("epsilon", 0.1, "L-inf radius in the [-1, 1] pixel scale (training and test "
                   "attack).")
flags.DEFINE_integer("pgd_steps", 7, "PGD steps during adversarial training.")
flags.DEFINE_integer("eval_pgd_steps", 20, "PGD steps of the test attack (--adversarial).")
flags.DEFINE_integer("seed", 0, "Seed of initialisation, shuffling and PGD starts.")
flags.DEFINE_float("holdout_fraction", 0.1, "Test fraction held out of the train split when the "
                   "source has no test split.")
flags.DEFINE_integer("shuffle_buffer", 10000, "Shuffle buffer (examples).")
common.define_gin_flags()
FLAGS = flags.FLAGS

_FMNIST_SOURCES = ("idx", "fashion_mnist_idx", "fashion_mnist")


def default_name(dataset, dataset_path, adversarial):
  """`fmnist_cnn` for Fashion-MNIST (idx at its default path), else `<dataset>_cnn`; + `_madry`."""
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.data import idx  # pylint: disable=g-import-not-at-top
  is_fmnist = dataset == "fashion_mnist" or (
      dataset in _FMNIST_SOURCES and (dataset_path is None or storage.abspath(dataset_path)
                                      == storage.abspath(idx.DEFAULT_IDX_PATH)))
  return ("fmnist" if is_fmnist else dataset) + "_cnn" + ("_madry" if adversarial else "")


def _has_test_split(dataset):
  from tfadvgan.data import registry  # pylint: disable=g-import-not-at-top
  spec = registry._SPECS.get(dataset)  # pylint: disable=protected-access
  return spec is None or "test" in spec.splits or "test" in spec.split_aliases


def load_splits(dataset, dataset_path, holdout_fraction):
  """Returns (train Source, test Source, description of the test data)."""
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  kwargs = {"source": dataset, "require_labels": True}
  if dataset_path:
    kwargs["path"] = dataset_path
  train = data_lib.load(split="train", **kwargs)
  if _has_test_split(dataset):
    return train, data_lib.load(split="test", **kwargs), "test split"
  errors.check(0 < holdout_fraction < 1,
               f"--holdout_fraction must be in (0, 1), got {holdout_fraction}.")
  n = int(train.images.reduce(0, lambda count, _: count + 1))
  n_test = max(1, int(round(n * holdout_fraction)))
  errors.check(n - n_test >= 1, f"Dataset {dataset!r} has only {n} example(s); too few to hold "
               f"out a test set.")
  print(f"dataset {dataset!r} has no test split: holding out the last {n_test} of {n} examples.")
  return (train.apply(lambda ds: ds.take(n - n_test)),
          train.apply(lambda ds: ds.skip(n - n_test)),
          f"last {n_test} of {n} train examples")


@common.main_wrapper
def main(argv):
  import math  # pylint: disable=g-import-not-at-top
  # Register every configurable the run may use before gin locks the config.
  from tfadvgan import attacks as _  # pylint: disable=g-import-not-at-top,unused-import
  from tfadvgan import data as _  # pylint: disable=g-import-not-at-top,unused-import,reimported
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import domain_classifier as dc  # pylint: disable=g-import-not-at-top

  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.out, "--out is required (e.g. --out=classifiers/fmnist_cnn.keras).")
  errors.check(FLAGS.out.endswith(".keras"), f"--out must end in .keras, got {FLAGS.out!r}.")
  errors.check(FLAGS.epochs >= 1 and FLAGS.batch_size >= 1,
               "--epochs and --batch_size must be >= 1.")
  common.parse_gin(FLAGS.gin_file, FLAGS.gin_param)
  name = FLAGS.name or default_name(FLAGS.dataset, FLAGS.dataset_path, FLAGS.adversarial)

  train, test, test_desc = load_splits(FLAGS.dataset, FLAGS.dataset_path, FLAGS.holdout_fraction)
  errors.check(len(train.shape) == 3, f"Dataset {train.name!r} holds points of shape "
               f"{train.shape}, not images.")
  train_ds = (train.images.cache().shuffle(FLAGS.shuffle_buffer, seed=FLAGS.seed,
                                           reshuffle_each_iteration=True)
              .batch(FLAGS.batch_size).prefetch(2))
  test_ds = test.images.batch(max(FLAGS.batch_size, 256)).cache()

  def log(epoch, logs):
    print(f"epoch {epoch + 1}/{FLAGS.epochs}: "
          + ", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())), flush=True)

  model, history = dc.train_domain_classifier(
      train_ds, test_ds, epochs=FLAGS.epochs, adversarial=FLAGS.adversarial,
      epsilon=FLAGS.epsilon, pgd_steps=FLAGS.pgd_steps, learning_rate=FLAGS.learning_rate,
      num_classes=train.num_classes, seed=FLAGS.seed, eval_pgd_steps=FLAGS.eval_pgd_steps,
      log_fn=log)
  accuracy = history["test_accuracy"][-1]
  metadata = dict(accuracy=accuracy, train_accuracy=history["accuracy"][-1],
                  train_loss=history["loss"][-1], dataset=FLAGS.dataset,
                  dataset_path=FLAGS.dataset_path and storage.abspath(FLAGS.dataset_path),
                  test_data=test_desc, epochs=FLAGS.epochs,
                  adversarial=FLAGS.adversarial, seed=FLAGS.seed)
  report = f"clean test accuracy {accuracy:.4f} ({test_desc})"
  if FLAGS.adversarial:
    pgd = history.get("test_adv_accuracy", math.nan)
    metadata.update(epsilon=FLAGS.epsilon, pgd_steps=FLAGS.pgd_steps,
                    eval_pgd_steps=FLAGS.eval_pgd_steps,
                    pgd_accuracy=pgd if math.isfinite(pgd) else None)
    report += f"; PGD-{FLAGS.eval_pgd_steps} (epsilon {FLAGS.epsilon}) accuracy {pgd:.4f}"
  dc.save_domain_classifier(model, FLAGS.out, name, metadata=metadata)
  print(f"{report}\nsaved {name!r} to {FLAGS.out} (+ {dc.sidecar_path(FLAGS.out)})")


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
