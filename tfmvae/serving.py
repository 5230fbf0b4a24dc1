"""A small client for tfmvae models served by TF Serving, over REST or gRPC.

REST uses only the standard library (urllib); gRPC needs the optional
`tensorflow-serving-api` package (`pip install "tfmvae[serving]"`). Every call
returns a dict {output name: numpy array}. The signatures are those written by
`tfmvae.export` (see its module docstring and docs/serving.md):

    client = Client("svg_smmnist", host="localhost", rest_port=8501, grpc_port=8500)
    future = client.predict_next_frames(frames, num_future=10, seed=(1, 2))
    # future: float32 [B, 10, H, W, C]
    out = client.predict("generate", {"image": x, "label": y, "mask": m,
                                      "num_samples": 4, "seed": [0, 0]})

Request formats (TF Serving REST API, POST /v1/models/<name>[/versions/<v>]:predict):
- columnar: {"signature_name": s, "inputs": {name: nested list}}; the response is
  {"outputs": {name: nested list}}, or {"outputs": nested list} when the signature
  has a single output. Every signature accepts it; the client's default.
- row: {"signature_name": s, "instances": [{name: value of one example}, ...]};
  the response is {"predictions": [...]}. Every input must share dimension 0, so
  signatures with scalar inputs (num_future, num_samples, seed) cannot use it.
"""
import json
import urllib.error
import urllib.request

import numpy as np

# Inputs of the exported signatures that are int32; every other input is float32.
INT32_INPUTS = frozenset({"num_future", "num_samples", "num_frames", "seed"})
_GRPC_MISSING = ("gRPC requests need the tensorflow-serving-api package: "
                 "pip install 'tfmvae[serving]' (or pip install tensorflow-serving-api)")


class ServingError(RuntimeError):
  """The server answered with an error (its message is kept)."""


def as_arrays(inputs, int32_inputs=INT32_INPUTS):
  """{name: value} -> {name: np.ndarray}, int32 for counts and seeds, else float32."""
  if not isinstance(inputs, dict) or not inputs:
    raise ValueError(f"inputs must be a non-empty dict {{name: array}}, got {inputs!r:.80}")
  return {k: np.asarray(v, dtype=np.int32 if k in int32_inputs else np.float32)
          for k, v in inputs.items()}


# ------------------------------------------------------------------ REST
def build_rest_request(inputs, signature_name="serving_default", format="columnar"):
  """The JSON body (a dict) of a REST predict request.

  Args:
    inputs: {input name: array-like}; see `as_arrays` for dtypes.
    signature_name: the signature to run.
    format: "columnar" ("inputs") or "row" ("instances").

  Raises:
    ValueError: an unknown format, or a row request whose inputs do not all
      share dimension 0 (scalar inputs need the columnar format).
  """
  arrays = as_arrays(inputs)
  if format == "columnar":
    return {"signature_name": signature_name,
            "inputs": {k: v.tolist() for k, v in arrays.items()}}
  if format != "row":
    raise ValueError(f"format must be 'columnar' or 'row', got {format!r}")
  scalars = sorted(k for k, v in arrays.items() if v.ndim == 0)
  if scalars:
    raise ValueError(f"inputs {scalars} are scalars: the row format ('instances') needs "
                     "every input to share dimension 0; use format='columnar' ('inputs')")
  sizes = {k: v.shape[0] for k, v in arrays.items()}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"the row format needs every input to share dimension 0, got {sizes}; "
                     "use format='columnar'")
  n = next(iter(sizes.values()))
  return {"signature_name": signature_name,
          "instances": [{k: v[i].tolist() for k, v in arrays.items()} for i in range(n)]}


def _array(value):
  arr = np.asarray(value)
  return arr.astype(np.float32) if arr.dtype.kind == "f" else arr


def parse_rest_response(body, output_names=None):
  """{output name: np.ndarray} from a REST predict response body (a dict).

  Args:
    body: the decoded JSON response.
    output_names: the signature's output names; needed to name the output when
      the signature has exactly one (TF Serving then drops the name). Without
      it a lone output is returned under the key "output".

  Raises:
    ServingError: the body holds an "error".
  """
  if "error" in body:
    raise ServingError(body["error"])
  single = output_names[0] if output_names and len(output_names) == 1 else "output"
  if "outputs" in body:
    out = body["outputs"]
    if isinstance(out, dict):
      return {k: _array(v) for k, v in out.items()}
    return {single: _array(out)}
  if "predictions" in body:
    preds = body["predictions"]
    if preds and isinstance(preds[0], dict):
      return {k: _array([p[k] for p in preds]) for k in preds[0]}
    return {single: _array(preds)}
  raise ServingError(f"unexpected response: no 'outputs' or 'predictions' in keys {sorted(body)}")


# ------------------------------------------------------------------ gRPC
def _grpc_modules():
  # pylint: disable=g-import-not-at-top  (optional dependency)
  try:
    import grpc
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc
  except ImportError as e:
    raise ImportError(_GRPC_MISSING) from e
  return grpc, predict_pb2, prediction_service_pb2_grpc


def build_grpc_request(model_name, inputs, signature_name="serving_default", version=None):
  """A `tensorflow.serving.PredictRequest` for the inputs.

  Raises:
    ImportError: tensorflow-serving-api is not installed.
  """
  _, predict_pb2, _ = _grpc_modules()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  if version is not None:
    request.model_spec.version.value = int(version)
  for k, v in as_arrays(inputs).items():
    request.inputs[k].CopyFrom(tf.make_tensor_proto(v))
  return request


def parse_grpc_response(response):
  """{output name: np.ndarray} from a `PredictResponse`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {k: _array(tf.make_ndarray(v)) for k, v in response.outputs.items()}


# ------------------------------------------------------------------ client
class Client:
  """Sends tfmvae signature requests to a TF Serving model server.

  Args:
    model_name: the served model's name (`--model_name`, the directory under
      exported/).
    host: server host.
    rest_port: REST port (TF Serving's `--rest_api_port`, 8501 in the docker image).
    grpc_port: gRPC port (`--port`, 8500 in the docker image).
    version: a fixed model version; None: the latest the server has loaded.
    timeout: seconds per request.
  """

  def __init__(self, model_name, host="localhost", rest_port=8501, grpc_port=8500,
               version=None, timeout=60.0):
    self.model_name = model_name
    self.host = host
    self.rest_port = rest_port
    self.grpc_port = grpc_port
    self.version = version
    self.timeout = timeout
    self._channel = None
    self._stub = None

  @property
  def rest_url(self):
    url = f"http://{self.host}:{self.rest_port}/v1/models/{self.model_name}"
    return url if self.version is None else f"{url}/versions/{int(self.version)}"

  def _http(self, url, body=None):
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=self.timeout) as response:
        return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
      text = e.read().decode("utf-8", "replace")
      try:
        message = json.loads(text).get("error", text)
      except ValueError:
        message = text
      raise ServingError(f"HTTP {e.code} from {url}: {message}") from None

  def status(self):
    """The model's version status (GET /v1/models/<name>)."""
    return self._http(self.rest_url)

  def metadata(self):
    """The model's signature metadata (GET /v1/models/<name>/metadata)."""
    return self._http(self.rest_url + "/metadata")

  def output_names(self, signature_name):
    """Output names of a signature, from the server's metadata."""
    sigs = self.metadata()["metadata"]["signature_def"]["signature_def"]
    if signature_name not in sigs:
      raise ServingError(f"the model has no signature {signature_name!r}; it has {sorted(sigs)}")
    return sorted(sigs[signature_name]["outputs"])

  def predict(self, signature_name, inputs, protocol="rest", format="columnar",
              output_names=None):
    """Runs a signature; returns {output name: np.ndarray}.

    Args:
      signature_name: e.g. "predict_next_frames", "infer", "generate".
      inputs: {input name: array-like}.
      protocol: "rest" or "grpc".
      format: REST request format, "columnar" or "row".
      output_names: the signature's outputs (REST only: names a lone output;
        fetched from the server's metadata when needed and not given).
    """
    if protocol == "grpc":
      return self._predict_grpc(signature_name, inputs)
    if protocol != "rest":
      raise ValueError(f"protocol must be 'rest' or 'grpc', got {protocol!r}")
    body = self._http(self.rest_url + ":predict",
                      build_rest_request(inputs, signature_name, format=format))
    lone = isinstance(body.get("outputs"), list) or (
        isinstance(body.get("predictions"), list) and body["predictions"]
        and not isinstance(body["predictions"][0], dict))
    if lone and output_names is None:
      output_names = self.output_names(signature_name)
    return parse_rest_response(body, output_names)

  def _predict_grpc(self, signature_name, inputs):
    grpc, _, service = _grpc_modules()
    if self._stub is None:
      self._channel = grpc.insecure_channel(
          f"{self.host}:{self.grpc_port}",
          options=[("grpc.max_send_message_length", 1 << 30),
                   ("grpc.max_receive_message_length", 1 << 30)])
      self._stub = service.PredictionServiceStub(self._channel)
    request = build_grpc_request(self.model_name, inputs, signature_name, self.version)
    try:
      response = self._stub.Predict(request, timeout=self.timeout)
    except grpc.RpcError as e:
      raise ServingError(f"gRPC {e.code().name}: {e.details()}") from None
    return parse_grpc_response(response)

  def close(self):
    if self._channel is not None:
      self._channel.close()
      self._channel = self._stub = None

  # ---------------------------------------------------------------- video
  def predict_next_frames(self, frames, num_future, seed=(0, 0), protocol="rest"):
    """frames [B, T, H, W, C] -> one sampled future, float32 [B, num_future, H, W, C]."""
    out = self.predict("predict_next_frames",
                       {"frames": frames, "num_future": num_future, "seed": seed},
                       protocol=protocol, output_names=["frames"])
    return out["frames"]

  def sample_next_frames(self, frames, num_future, num_samples, seed=(0, 0), protocol="rest"):
    """-> float32 [B, num_samples, num_future, H, W, C]."""
    out = self.predict("sample_next_frames",
                       {"frames": frames, "num_future": num_future,
                        "num_samples": num_samples, "seed": seed},
                       protocol=protocol, output_names=["frames"])
    return out["frames"]

  # ---------------------------------------------------------------- multimodal
  @staticmethod
  def _modal_inputs(inputs, mask):
    inputs = dict(inputs)
    if mask is not None:
      inputs["mask"] = mask
    if "mask" not in inputs:
      raise ValueError("multimodal signatures need a 'mask' [batch, num_modalities] "
                       "(1 = present); pass zeros for a missing modality's values")
    return inputs

  def infer(self, inputs, mask=None, protocol="rest"):
    """Every modality decoded from q(z | present modalities): {name: [B, *shape]}."""
    return self.predict("infer", self._modal_inputs(inputs, mask), protocol=protocol)

  def encode(self, inputs, mask=None, protocol="rest"):
    """{"loc": [B, D], "scale": [B, D]} of q(z | present modalities)."""
    return self.predict("encode", self._modal_inputs(inputs, mask), protocol=protocol)

  def generate(self, inputs, mask=None, num_samples=1, seed=(0, 0), protocol="rest"):
    """z ~ q(z | present) decoded: {name: [B, num_samples, *shape]}."""
    inputs = self._modal_inputs(inputs, mask)
    inputs.update(num_samples=num_samples, seed=seed)
    return self.predict("generate", inputs, protocol=protocol)

  def sample(self, num_samples, seed=(0, 0), protocol="rest"):
    """z ~ p(z) decoded: {name: [num_samples, *shape]}."""
    return self.predict("sample", {"num_samples": num_samples, "seed": seed},
                        protocol=protocol)
