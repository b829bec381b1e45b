"""tfadvgan: adversarially trained discriminators for stable GAN training (TensorFlow / Keras 3)."""
import re

from setuptools import find_packages, setup

# The version's one source is tfadvgan/__init__.py (read, not imported: no TensorFlow needed here).
with open("tfadvgan/__init__.py") as f:
  VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

setup(
    name="tfadvgan",
    version=VERSION,
    description="AS-GAN, DAT, Rob-GAN and Fast-RobGAN on one Keras 3 / tf.distribute framework",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfadvgan", "tfadvgan.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorboard",
        "tensorflow-datasets>=4.9",
        # TFDS 4.9 needs it to prepare a dataset (DatasetBuilder.code_path) but does not declare it.
        "importlib_resources",
        "tensorflow-gan>=2.1",
        "gin-config>=0.5",
        "absl-py>=1.0",
        "numpy",
    ],
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3", "pytest-split>=0.9", "scipy",
                             "matplotlib"],
                    "plots": ["matplotlib"]},
    entry_points={
        "console_scripts": [
            "tfadvgan-train=tfadvgan.cli.train:run",
            "tfadvgan-sample=tfadvgan.cli.sample:run",
            "tfadvgan-benchmark=tfadvgan.cli.benchmark:run",
            "tfadvgan-eval=tfadvgan.cli.eval:run",
            "tfadvgan-diagnose=tfadvgan.cli.diagnose:run",
            "tfadvgan-train-classifier=tfadvgan.cli.train_classifier:run",
            "tfadvgan-study=tfadvgan.cli.study:run",
            "tfadvgan-finetune=tfadvgan.cli.finetune:run",
            "tfadvgan-prepare-data=tfadvgan.cli.prepare_data:run",
            "tfadvgan-export=tfadvgan.cli.export:run",
        ],
    },
)
