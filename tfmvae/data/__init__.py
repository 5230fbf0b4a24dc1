"""tfmvae.data: tf.data pipelines (float32 in [0, 1], channels last) and previews.

All pipelines map in parallel (AUTOTUNE) and prefetch. See docs/architecture.md:
multimodal datasets yield unbatched dicts with one key per modality plus a float32
`"mask"` in the documented modality order (image first); video datasets yield frames
[T, H, W, C] or dicts with `"frames"`.
"""
from tfmvae.data.celeba import (CELEBA_ATTRIBUTES, CELEBA_MODALITIES, MVAE18_ATTRIBUTES,
                                celeba, celeba_raw, celeba_tfds, preprocess_face,
                                read_celeba_attribute_names, read_celeba_attributes,
                                resolve_attributes)
from tfmvae.data.mnist import MNIST_DIR_ENV, MNIST_SPLITS, load_mnist, read_idx
from tfmvae.data.mnist_pairs import MNIST_PAIRS_MODALITIES, label_keep_mask, mnist_pairs
from tfmvae.data.moving_mnist import (moving_mnist, moving_mnist_standard,
                                      moving_mnist_tfds, sample_digit_motion)
from tfmvae.data.moving_shapes import (SHAPE_ATTRIBUTE_NAMES, SHAPES_PAIRS_MODALITIES,
                                       moving_shapes, shape_attribute_names, shapes_pairs)
from tfmvae.data.preview import DATASETS, make_dataset, preview
from tfmvae.data.sprites import bouncing_trajectories, paste_sprites
from tfmvae.data.visualize import image_grid, save_image_grid, save_video_gif

__all__ = [
    "CELEBA_ATTRIBUTES",
    "CELEBA_MODALITIES",
    "DATASETS",
    "MNIST_DIR_ENV",
    "MNIST_PAIRS_MODALITIES",
    "MNIST_SPLITS",
    "MVAE18_ATTRIBUTES",
    "SHAPES_PAIRS_MODALITIES",
    "SHAPE_ATTRIBUTE_NAMES",
    "bouncing_trajectories",
    "celeba",
    "celeba_raw",
    "celeba_tfds",
    "image_grid",
    "label_keep_mask",
    "load_mnist",
    "make_dataset",
    "mnist_pairs",
    "moving_mnist",
    "moving_mnist_standard",
    "moving_mnist_tfds",
    "moving_shapes",
    "paste_sprites",
    "preprocess_face",
    "preview",
    "read_celeba_attribute_names",
    "read_celeba_attributes",
    "read_idx",
    "resolve_attributes",
    "sample_digit_motion",
    "save_image_grid",
    "save_video_gif",
    "shape_attribute_names",
    "shapes_pairs",
]
