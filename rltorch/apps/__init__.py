"""Command-line applications that sit above the library layers (they may use agents, classifiers and
envs together): ``rltorch train classifier`` (:mod:`rltorch.apps.classifier_run`)."""
