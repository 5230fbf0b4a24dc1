"""Trained PyTorch SVG models (edenton/svg) as `tfmvae.models.SVG`.

Denton & Fergus's code saves a checkpoint as `torch.save({"encoder": encoder,
"decoder": decoder, "frame_predictor": ..., "posterior": ..., "prior": ...,
"opt": opt})`: whole pickled modules plus the argparse options. The same weights
may also come as an `.npz` of `state_dict` tensors keyed `MODULE/PARAM`.

Layouts (PyTorch -> Keras):
    Conv2d weight [out, in, kh, kw]            -> Conv2D kernel [kh, kw, in, out]
    ConvTranspose2d weight [in, out, kh, kw]   -> Conv2DTranspose kernel [kh, kw, out, in]
    Linear weight [out, in]                    -> Dense kernel [in, out]
    LSTMCell weight_ih / weight_hh [4H, in]    -> LSTMCell kernel / recurrent_kernel [in, 4H]
        (gate order i, f, g, o in both), bias_ih + bias_hh -> bias
    BatchNorm weight, bias, running_mean, running_var -> gamma, beta, moving_mean,
        moving_variance (num_batches_tracked is not used)

Modules -> SVG attributes: encoder `c1..c4` (DCGAN blocks) and `c5` -> `encoder`;
decoder `upc1..upc5` -> `decoder`; `frame_predictor` -> `predictor`; `posterior` ->
`posterior_rnn` + `posterior_head` (`mu_net`, `logvar_net`); `prior` -> `prior_rnn` +
`prior_head` (SVG-LP; an SVG-FP checkpoint has no prior).

Only the DCGAN frame networks exist in tfmvae; a VGG checkpoint (their BAIR/KTH
models) is refused with a message saying so.

Example:
    >>> model = tfmvae.convert.svg_from_pytorch("svg_lp_smmnist.npz")
    >>> samples = model.predict(context, num_future=10, num_samples=100, seed=0)
"""
import os
import pathlib
import pickle
import re
import types

import numpy as np

MODULES = ("encoder", "decoder", "frame_predictor", "posterior", "prior")
SOURCES = ("edenton_svg",)


class ConversionError(ValueError):
  """A checkpoint that cannot become the requested model (the message says why)."""


# ------------------------------------------------------------------ reading
def read_pytorch_checkpoint(source):
  """The `state_dict` tensors and options of a checkpoint.

  Args:
    source: path of an `.npz` of tensors keyed "MODULE/PARAM", or of a `.pth`
      written by the authors' training scripts (needs torch).

  Returns:
    (tensors, opt): dict "MODULE/PARAM" -> float32/int64 NumPy array; dict of the
    checkpoint's options (empty for an `.npz`).

  Raises:
    FileNotFoundError: no such file.
    ImportError: a `.pth` without torch installed (says what to install).
    ConversionError: a file that is neither (names it).
  """
  path = pathlib.Path(source)
  if not path.is_file():
    raise FileNotFoundError(f"no checkpoint at {path}")
  if path.suffix == ".npz":
    try:
      with np.load(path, allow_pickle=False) as data:
        tensors = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError) as e:
      raise ConversionError(f"{path} is not a readable .npz of tensors ({e})") from e
    bad = [k for k in tensors if k.count("/") != 1]
    if bad:
      raise ConversionError(f"{path}: keys must be MODULE/PARAM, got {bad[:5]}")
    return tensors, {}
  return _read_pth(path)


def _read_pth(path):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f"reading {path} needs PyTorch: pip install 'tfmvae[torch]' (or save its "
        "state_dicts as an .npz of MODULE/PARAM tensors, which needs no torch)") from e
  try:
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=False,
                            pickle_module=_stub_pickle_module(torch))
  except Exception as e:  # torch raises many types for a bad file
    raise ConversionError(f"{path} is not a readable PyTorch checkpoint ({e})") from e
  if not isinstance(checkpoint, dict):
    raise ConversionError(f"{path} holds a {type(checkpoint).__name__}, not the dict of "
                          "modules edenton/svg saves")
  tensors = {}
  for name in MODULES:
    if name not in checkpoint:
      continue
    module = checkpoint[name]
    state = module.state_dict() if hasattr(module, "state_dict") else module
    for key, value in state.items():
      tensors[f"{name}/{key}"] = value.detach().cpu().numpy()
  if not tensors:
    raise ConversionError(f"{path} holds none of the modules {list(MODULES)} (keys: "
                          f"{sorted(checkpoint)[:10]})")
  opt = checkpoint.get("opt")
  opt = dict(vars(opt)) if opt is not None and hasattr(opt, "__dict__") else dict(opt or {})
  return tensors, opt


def _stub_pickle_module(torch):
  """A pickle module whose Unpickler stands in an `nn.Module` for the authors' classes.

  Their checkpoints pickle whole modules of their `models` package; without their
  code on the path, those classes become plain `torch.nn.Module`s, which is all a
  `state_dict()` needs.
  """

  class Stub(torch.nn.Module):

    def forward(self, *args):  # never called
      raise NotImplementedError

  class Missing:
    """Any other class that no longer exists (e.g. the `_backend` objects that
    torch < 1.0 pickled into modules): kept as an inert attribute."""

    def __setstate__(self, state):
      self.state = state

  class Unpickler(pickle.Unpickler):

    def find_class(self, module, name):
      try:
        return super().find_class(module, name)
      except (ImportError, AttributeError):
        return Stub if module.split(".")[0] in ("models", "__main__") else Missing

  return types.SimpleNamespace(Unpickler=Unpickler, load=lambda f, **kw: Unpickler(f, **kw).load(),
                               __name__="tfmvae_svg_pickle")


# ------------------------------------------------------------------ architecture
def _count(tensors, pattern):
  regex = re.compile(pattern)
  return len({m.group(1) for k in tensors for m in [regex.fullmatch(k)] if m})


def svg_architecture(tensors, opt=None):
  """SVG constructor arguments of a checkpoint: from `opt` where it has them, else
  from the tensor shapes (n_past, n_future, beta, last_frame_skip: the defaults).

  Raises:
    ConversionError: a VGG checkpoint, or tensors that are not an SVG's.
  """
  opt = dict(opt or {})
  if opt.get("model", "dcgan") != "dcgan" or any(".0.main." in k for k in tensors
                                                 if k.startswith("encoder/")):
    raise ConversionError(
        "this is an SVG checkpoint with VGG frame networks (their BAIR/KTH models); tfmvae's "
        "frame networks are DCGAN only")
  blocks = _count(tensors, r"encoder/c(\d+)\.main\.0\.weight")
  last = f"encoder/c{blocks + 1}.0.weight"  # c5 in their dcgan_64
  for needed in ("encoder/c1.main.0.weight", last, "posterior/embed.weight",
                 "posterior/mu_net.weight", "frame_predictor/embed.weight"):
    if needed not in tensors:
      raise ConversionError(f"not an SVG checkpoint: tensor {needed!r} is missing")
  c1 = tensors["encoder/c1.main.0.weight"]
  arch = {
      "prior": "learned" if any(k.startswith("prior/") for k in tensors) else "fixed",
      "image_size": 4 * 2**blocks,
      "channels": int(c1.shape[1]),
      "filters": int(c1.shape[0]),
      "g_dim": int(tensors[last].shape[0]),
      "z_dim": int(tensors["posterior/mu_net.weight"].shape[0]),
      "rnn_size": int(tensors["posterior/embed.weight"].shape[0]),
      "predictor_layers": _count(tensors, r"frame_predictor/lstm\.(\d+)\.weight_ih"),
      "posterior_layers": _count(tensors, r"posterior/lstm\.(\d+)\.weight_ih"),
  }
  if arch["prior"] == "learned":
    arch["prior_layers"] = _count(tensors, r"prior/lstm\.(\d+)\.weight_ih")
  from_opt = {"g_dim": "g_dim", "z_dim": "z_dim", "rnn_size": "rnn_size",
              "predictor_layers": "predictor_rnn_layers",
              "posterior_layers": "posterior_rnn_layers", "prior_layers": "prior_rnn_layers",
              "n_past": "n_past", "n_future": "n_future", "beta": "beta",
              "last_frame_skip": "last_frame_skip", "image_size": "image_width",
              "channels": "channels"}
  for ours, theirs in from_opt.items():
    if theirs in opt and (ours != "prior_layers" or arch["prior"] == "learned"):
      arch[ours] = type(opt[theirs])(opt[theirs]) if not isinstance(opt[theirs], bool) \
          else bool(opt[theirs])
  return arch


# ------------------------------------------------------------------ weight map
def _conv(w):
  return np.transpose(w, (2, 3, 1, 0))


def _linear(w):
  return np.transpose(w)


def _same(w):
  return w


def _batch_norm(prefix, layer):
  return [((f"{prefix}.weight",), layer.gamma, _same), ((f"{prefix}.bias",), layer.beta, _same),
          ((f"{prefix}.running_mean",), layer.moving_mean, _same),
          ((f"{prefix}.running_var",), layer.moving_variance, _same)]


def _conv_layer(prefix, layer):
  return [((f"{prefix}.weight",), layer.kernel, _conv), ((f"{prefix}.bias",), layer.bias, _same)]


def _dense(prefix, layer):
  return [((f"{prefix}.weight",), layer.kernel, _linear),
          ((f"{prefix}.bias",), layer.bias, _same)]


def _lstm(module, rnn):
  entries = _dense(f"{module}/embed", rnn.embed)
  for i, cell in enumerate(rnn.cells):
    p = f"{module}/lstm.{i}"
    entries += [((f"{p}.weight_ih",), cell.kernel, _linear),
                ((f"{p}.weight_hh",), cell.recurrent_kernel, _linear)]
    if hasattr(cell, "bias_ih"):  # PyTorchLSTMCell: both biases, as trained
      entries += [((f"{p}.bias_ih",), cell.bias_ih, _same), ((f"{p}.bias_hh",), cell.bias_hh, _same)]
    else:  # keras LSTMCell: one bias, their sum
      entries += [((f"{p}.bias_ih", f"{p}.bias_hh"), cell.bias, None)]
  return entries


def svg_weight_map(model):
  """[(PyTorch keys, Keras variable, transform)] for every weight of an SVG.

  A transform of None sums the keys' tensors (the LSTM's two biases).
  """
  enc, dec = model.encoder, model.decoder
  entries = []
  for i, (conv, norm) in enumerate(zip(enc.convs, enc.norms), start=1):
    entries += _conv_layer(f"encoder/c{i}.main.0", conv)
    entries += _batch_norm(f"encoder/c{i}.main.1", norm)
  last = len(enc.convs) + 1
  entries += _conv_layer(f"encoder/c{last}.0", enc.out_conv)
  entries += _batch_norm(f"encoder/c{last}.1", enc.out_norm)
  entries += _conv_layer("decoder/upc1.0", dec.in_conv)
  entries += _batch_norm("decoder/upc1.1", dec.in_norm)
  for j, (conv, norm) in enumerate(zip(dec.convs, dec.norms), start=2):
    entries += _conv_layer(f"decoder/upc{j}.main.0", conv)
    entries += _batch_norm(f"decoder/upc{j}.main.1", norm)
  entries += _conv_layer(f"decoder/upc{len(dec.convs) + 2}.0", dec.out_conv)
  entries += _lstm("frame_predictor", model.predictor)
  entries += _dense("frame_predictor/output.0", model.predictor.out)
  entries += _lstm("posterior", model.posterior_rnn)
  entries += _dense("posterior/mu_net", model.posterior_head.loc_layer)
  entries += _dense("posterior/logvar_net", model.posterior_head.logvar_layer)
  if model.learned_prior:
    entries += _lstm("prior", model.prior_rnn)
    entries += _dense("prior/mu_net", model.prior_head.loc_layer)
    entries += _dense("prior/logvar_net", model.prior_head.logvar_layer)
  return entries


def load_svg_weights(model, tensors):
  """Assigns PyTorch `state_dict` tensors to a built SVG, all or nothing.

  Raises:
    ConversionError: naming every missing, unexpected and mis-shaped tensor; no
      variable is changed then.
  """
  entries = svg_weight_map(model)
  expected = {k for keys, _, _ in entries for k in keys}
  given = {k for k in tensors if not k.endswith(".num_batches_tracked")}
  problems = []
  missing = sorted(expected - given)
  extra = sorted(given - expected)
  if missing:
    problems.append(f"missing tensors: {missing}")
  if extra:
    problems.append(f"unexpected tensors: {extra}")
  values = []
  if not missing:
    for keys, variable, transform in entries:
      arrays = [np.asarray(tensors[k], np.float32) for k in keys]
      if transform is None:
        if len({a.shape for a in arrays}) != 1:
          problems.append(f"{' + '.join(keys)}: shapes {[a.shape for a in arrays]} differ")
          continue
        value = np.sum(arrays, axis=0)
      else:
        value = transform(arrays[0])
      if tuple(value.shape) != tuple(variable.shape):
        problems.append(f"{keys[0]}: shape {arrays[0].shape} gives {value.shape} for "
                        f"{variable.path}, which is {tuple(variable.shape)}")
        continue
      if not np.all(np.isfinite(value)):
        problems.append(f"{keys[0]}: holds NaN or Inf")
        continue
      values.append((variable, value))
  if problems:
    raise ConversionError("the checkpoint does not fit this SVG: " + "; ".join(problems))
  for variable, value in values:
    variable.assign(value)


def svg_from_pytorch(source, **overrides):
  """A built `tfmvae.models.SVG` carrying the weights of an edenton/svg model.

  Args:
    source: `.npz` of `state_dict` tensors keyed "MODULE/PARAM", or the authors'
      `.pth` checkpoint (needs torch: `pip install 'tfmvae[torch]'`); or a
      `(tensors, opt)` pair as `read_pytorch_checkpoint` returns.
    **overrides: SVG constructor arguments replacing the ones read from the
      checkpoint (e.g. n_past, last_frame_skip, seed, name).

  Returns:
    The SVG (uncompiled), with every weight and BatchNorm statistic loaded.

  Raises:
    ConversionError, FileNotFoundError, ImportError: see `read_pytorch_checkpoint`
    and `load_svg_weights`.
  """
  from tfmvae.models.svg import SVG  # pylint: disable=g-import-not-at-top
  if isinstance(source, tuple):
    tensors, opt = source
  else:
    tensors, opt = read_pytorch_checkpoint(source)
  arch = svg_architecture(tensors, opt)
  arch.update(overrides)
  try:
    model = SVG(**arch)
  except (ValueError, TypeError) as e:
    raise ConversionError(f"cannot build an SVG from {source!r}: {e}") from e
  load_svg_weights(model, tensors)
  return model


def write_model_dir(model, model_dir, dataset="moving_mnist", **config_overrides):
  """Writes a converted SVG as a tfmvae model directory (config.json + checkpoint).

  `tfmvae-eval`, `tfmvae-sample`, `tfmvae-export` and `tfmvae-train` (to fine-tune)
  take the directory as they take a trained one. The config is the SM-MNIST SVG
  preset with the model's sizes; `config_overrides` replace Config fields.

  Raises:
    ConversionError: model_dir already holds a model.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfmvae import configs  # pylint: disable=g-import-not-at-top
  from tfmvae import train_lib  # pylint: disable=g-import-not-at-top
  model_dir = pathlib.Path(model_dir)
  if (model_dir / train_lib.CONFIG_FILE).exists() or tf.train.latest_checkpoint(str(model_dir)):
    raise ConversionError(f"--model_dir={model_dir} already holds a model; choose a new "
                          "directory")
  cfg = model.get_config()
  options = {k: cfg[k] for k in ("g_dim", "rnn_size", "filters", "predictor_layers",
                                 "posterior_layers", "prior_layers", "skip",
                                 "last_frame_skip")}
  preset = "mm_svg_lp" if model.learned_prior else "mm_svg_fp"
  fields = dict(model_dir=str(model_dir), dataset=dataset, image_size=model.image_size,
                channels=model.channels, latent_dim=model.z_dim, beta=model.beta,
                n_past=model.n_past, n_future=model.n_future, model_options=options)
  fields.update(config_overrides)
  config = configs.validate(configs.get_preset(preset, **fields))
  built = train_lib.build_model(config)
  train_lib.compile_model(built, config)
  train_lib.build_optimizers(built)
  if len(built.variables) != len(model.variables):
    raise ConversionError("the config's model does not have the converted model's variables")
  for target, value in zip(built.variables, model.variables):
    scoped = value.path.startswith(model.name + "/")  # not a process-global seed name
    same_path = (not scoped) or (target.path.split("/", 1)[-1] == value.path.split("/", 1)[-1])
    if not same_path or tuple(target.shape) != tuple(value.shape):
      raise ConversionError(f"cannot copy {value.path} {tuple(value.shape)} into "
                            f"{target.path} {tuple(target.shape)}")
    target.assign(value)
  tmp = model_dir.with_name(model_dir.name + ".converting")
  if tmp.exists():
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(tmp)
  tmp.mkdir(parents=True)
  checkpoint = train_lib.make_checkpoint(built)
  tf.train.CheckpointManager(checkpoint, str(tmp), max_to_keep=1).save(checkpoint_number=0)
  train_lib.write_config(config, tmp)
  model_dir.parent.mkdir(parents=True, exist_ok=True)
  if model_dir.exists():
    if any(model_dir.iterdir()):
      raise ConversionError(f"--model_dir={model_dir} is not empty")
    model_dir.rmdir()
  os.replace(tmp, model_dir)
  return config
