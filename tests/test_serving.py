"""Tests of tfmvae.serving: request building against exported signatures, and REST /
gRPC round trips through small local servers that answer like TF Serving.

The fake servers (127.0.0.1, ephemeral ports) load the exported SavedModels and
follow TF Serving's documented wire formats: REST columnar ("inputs" -> "outputs")
and row ("instances" -> "predictions") requests, a lone output returned without its
name, errors as {"error": message}; gRPC PredictRequest/PredictResponse with the
dtype of every input tensor checked against the signature (as TF Serving does).
Outputs are compared with the Keras model's (tolerance as in test_export: 1e-5).
"""
import http.server
import json
import re
import sys
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_export import ATOL
from tests.test_export import FUTURE
from tests.test_export import SEED
from tests.test_export import assert_outputs_close
from tests.test_export import frames
from tests.test_export import keras_outputs
from tests.test_export import mvae_inputs
from tests.test_export import signature_inputs
from tests.test_export import tiny_mvae
from tests.test_export import tiny_svg
from tfmvae import export
from tfmvae import serving

KIND = {"mvae": "mvae", "svg": "video"}


@pytest.fixture(scope="module")
def models():
  keras.utils.set_random_seed(1)
  return {"mvae": tiny_mvae(), "svg": tiny_svg()}


@pytest.fixture(scope="module")
def base_dir(models, tmp_path_factory):
  base = tmp_path_factory.mktemp("exported")
  for name, model in models.items():
    export.export_model(model, base, name, max_future=5, max_samples=4)
  return base


class FakeModelServer:
  """What TF Serving does with a model base directory, minus the C++."""

  def __init__(self, base_dir):
    self.base_dir = base_dir
    self._loaded = {}
    self.requests = []

  def load(self, name, version=None):
    versions = export.list_versions(self.base_dir / name)
    if not versions or (version is not None and int(version) not in versions):
      raise LookupError(f"Servable not found for request: {name} version {version}")
    version = int(version) if version is not None else versions[-1]
    if (name, version) not in self._loaded:
      self._loaded[(name, version)] = tf.saved_model.load(str(self.base_dir / name / str(version)))
    return version, self._loaded[(name, version)]

  def signature(self, name, version, signature_name):
    version, obj = self.load(name, version)
    signature_name = signature_name or "serving_default"
    if signature_name not in obj.signatures:
      raise LookupError(f"Serving signature name: \"{signature_name}\" not found in signature def")
    return version, obj.signatures[signature_name]

  def run(self, name, version, signature_name, inputs, strict_dtypes=False):
    _, fn = self.signature(name, version, signature_name)
    specs = fn.structured_input_signature[1]
    if set(inputs) != set(specs):
      raise ValueError(f"inputs {sorted(inputs)} do not match the signature's {sorted(specs)}")
    feed = {}
    for key, spec in specs.items():
      value = np.asarray(inputs[key])
      if strict_dtypes and tf.as_dtype(value.dtype) != spec.dtype:
        raise ValueError(f"Expects arg[{key}] to be {spec.dtype.name} but "
                         f"{tf.as_dtype(value.dtype).name} is provided")
      feed[key] = tf.constant(value, spec.dtype)
    return {k: v.numpy() for k, v in fn(**feed).items()}

  def metadata(self, name, version):
    version, obj = self.load(name, version)

    def tensor_info(spec):
      return {"dtype": "DT_" + spec.dtype.name.upper().replace("FLOAT32", "FLOAT"),
              "tensor_shape": {"dim": [{"size": str(-1 if d is None else d)}
                                       for d in spec.shape], "unknown_rank": False},
              "name": spec.name}

    sigs = {}
    for sig_name, fn in obj.signatures.items():
      sigs[sig_name] = {
          "inputs": {k: tensor_info(s) for k, s in fn.structured_input_signature[1].items()},
          "outputs": {k: tensor_info(s) for k, s in fn.structured_outputs.items()},
          "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": {"signature_def": sigs}}}


_URL = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(:predict|/metadata)?$")


def _rest_handler(server):

  class Handler(http.server.BaseHTTPRequestHandler):

    def log_message(self, *args):  # Quiet.
      pass

    def _reply(self, code, body):
      data = json.dumps(body).encode("utf-8")
      self.send_response(code)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

    def do_GET(self):  # pylint: disable=invalid-name
      match = _URL.match(self.path)
      if not match or match.group(3) != "/metadata":
        return self._reply(404, {"error": f"Malformed request: GET {self.path}"})
      try:
        return self._reply(200, server.metadata(match.group(1), match.group(2)))
      except LookupError as e:
        return self._reply(404, {"error": str(e)})

    def do_POST(self):  # pylint: disable=invalid-name
      match = _URL.match(self.path)
      if not match or match.group(3) != ":predict":
        return self._reply(404, {"error": f"Malformed request: POST {self.path}"})
      body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
      server.requests.append(body)
      name, version = match.group(1), match.group(2)
      try:
        _, fn = server.signature(name, version, body.get("signature_name"))
        input_names = sorted(fn.structured_input_signature[1])
        if "instances" in body:
          rows = body["instances"]
          if not isinstance(rows[0], dict):
            rows = [{input_names[0]: r} for r in rows]
          inputs = {k: [r[k] for r in rows] for k in rows[0]}
        else:
          inputs = body["inputs"]
          if not isinstance(inputs, dict):
            inputs = {input_names[0]: inputs}
        out = server.run(name, version, body.get("signature_name"), inputs)
      except LookupError as e:
        return self._reply(404, {"error": str(e)})
      except (ValueError, KeyError, tf.errors.InvalidArgumentError) as e:
        return self._reply(400, {"error": getattr(e, "message", str(e))})
      if "instances" in body:
        if len(out) == 1:
          return self._reply(200, {"predictions": next(iter(out.values())).tolist()})
        n = len(next(iter(out.values())))
        return self._reply(200, {"predictions": [{k: v[i].tolist() for k, v in out.items()}
                                                 for i in range(n)]})
      if len(out) == 1:
        return self._reply(200, {"outputs": next(iter(out.values())).tolist()})
      return self._reply(200, {"outputs": {k: v.tolist() for k, v in out.items()}})

  return Handler


@pytest.fixture(scope="module")
def fake(base_dir):
  return FakeModelServer(base_dir)


@pytest.fixture(scope="module")
def rest_port(fake):
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(fake))
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd.server_address[1]
  httpd.shutdown()
  httpd.server_close()


# ------------------------------------------------------------------ request building
def test_requests_match_every_exported_signature(fake):
  checked = 0
  for name, kind in KIND.items():
    _, obj = fake.load(name)
    for sig_name, fn in obj.signatures.items():
      specs = fn.structured_input_signature[1]
      target = "infer" if sig_name == "serving_default" and kind == "mvae" else (
          "predict_next_frames" if sig_name == "serving_default" else sig_name)
      inputs = signature_inputs(kind, 2)[target]
      body = serving.build_rest_request(inputs, sig_name)
      assert body["signature_name"] == sig_name
      assert set(body["inputs"]) == set(specs), (name, sig_name)
      arrays = serving.as_arrays(inputs)
      for key, spec in specs.items():
        assert tf.as_dtype(arrays[key].dtype) == spec.dtype, (name, sig_name, key)
        assert spec.shape.is_compatible_with(np.asarray(body["inputs"][key]).shape)
      request = serving.build_grpc_request(name, inputs, sig_name, version=1)
      assert request.model_spec.name == name and request.model_spec.signature_name == sig_name
      assert request.model_spec.version.value == 1
      assert set(request.inputs) == set(specs)
      for key, spec in specs.items():
        assert request.inputs[key].dtype == spec.dtype.as_datatype_enum, (name, sig_name, key)
        shape = [d.size for d in request.inputs[key].tensor_shape.dim]
        assert spec.shape.is_compatible_with(shape)
      scalars = [k for k, s in specs.items() if s.shape.rank == 0]
      if scalars:
        with pytest.raises(ValueError, match="columnar"):
          serving.build_rest_request(inputs, sig_name, format="row")
      else:
        rows = serving.build_rest_request(inputs, sig_name, format="row")["instances"]
        assert len(rows) == 2 and all(set(r) == set(specs) for r in rows)
      checked += 1
  assert checked == 8  # mvae: infer encode generate sample default; svg: 2 + default.


def test_parse_rest_response():
  out = serving.parse_rest_response({"outputs": [[1.0, 2.0]]}, ["frames"])
  assert list(out) == ["frames"] and out["frames"].dtype == np.float32
  out = serving.parse_rest_response({"predictions": [{"a": [1.0], "b": 2}, {"a": [3.0], "b": 4}]})
  np.testing.assert_array_equal(out["a"], [[1.0], [3.0]])
  np.testing.assert_array_equal(out["b"], [2, 4])
  assert list(serving.parse_rest_response({"outputs": [0.5]})) == ["output"]
  with pytest.raises(serving.ServingError, match="boom"):
    serving.parse_rest_response({"error": "boom"})
  with pytest.raises(ValueError, match="scalars"):
    serving.build_rest_request({"x": [1.0], "num_samples": 2}, "s", format="row")
  with pytest.raises(ValueError, match="share dimension 0"):
    serving.build_rest_request({"x": [1.0], "y": [1.0, 2.0]}, "s", format="row")


# ------------------------------------------------------------------ REST round trip
def test_rest_round_trip_video(models, fake, rest_port):
  client = serving.Client("svg", host="127.0.0.1", rest_port=rest_port)
  for batch in (1, 3):
    want = keras_outputs(models["svg"], "video", batch)
    x = frames(batch)
    got = client.predict_next_frames(x, FUTURE, seed=SEED)
    assert got.shape == (batch, FUTURE, 16, 16, 1) and got.dtype == np.float32
    np.testing.assert_allclose(got, want["predict_next_frames"]["frames"], atol=ATOL)
    got = client.sample_next_frames(x, FUTURE, 2, seed=SEED)
    np.testing.assert_allclose(got, want["sample_next_frames"]["frames"], atol=ATOL)
  body = fake.requests[-1]
  assert body["signature_name"] == "sample_next_frames" and "inputs" in body
  # Lone output without names given: the client reads them from /metadata.
  # (`want` is batch 3's: the noise depends on the batch size, as in the Keras model.)
  out = client.predict("serving_default", {"frames": frames(3), "num_future": FUTURE,
                                           "seed": SEED})
  assert list(out) == ["frames"]
  np.testing.assert_allclose(out["frames"], want["predict_next_frames"]["frames"], atol=ATOL)
  pinned = serving.Client("svg", host="127.0.0.1", rest_port=rest_port, version=1)
  assert pinned.rest_url.endswith("/v1/models/svg/versions/1")
  assert pinned.metadata()["model_spec"]["version"] == "1"


def test_rest_round_trip_multimodal(models, rest_port):
  client = serving.Client("mvae", host="127.0.0.1", rest_port=rest_port)
  want = keras_outputs(models["mvae"], "mvae", 3)
  x = mvae_inputs(3)
  mods = {k: v for k, v in x.items() if k != "mask"}
  assert_outputs_close(client.infer(mods, mask=x["mask"]), want["infer"], "REST infer")
  assert_outputs_close(client.predict("infer", x, format="row"), want["infer"], "REST row infer")
  assert_outputs_close(client.encode(x), want["encode"], "REST encode")
  assert_outputs_close(client.generate(x, num_samples=2, seed=SEED), want["generate"],
                       "REST generate")
  assert_outputs_close(client.sample(3, seed=SEED), want["sample"], "REST sample")
  with pytest.raises(ValueError, match="mask"):
    client.infer(mods)


def test_rest_errors_are_clear(rest_port):
  client = serving.Client("svg", host="127.0.0.1", rest_port=rest_port)
  with pytest.raises(serving.ServingError, match="(?s)HTTP 400.*expected frame height 16"):
    client.predict_next_frames(frames(1)[:, :, :8], 2, seed=SEED)
  with pytest.raises(serving.ServingError, match="num_future must be <= 5"):
    client.predict_next_frames(frames(1), 6, seed=SEED)
  with pytest.raises(serving.ServingError, match="(?s)HTTP 404.*not found"):
    client.predict("nope", {"x": [1.0]})
  with pytest.raises(serving.ServingError, match="HTTP 404"):
    serving.Client("missing", host="127.0.0.1", rest_port=rest_port).metadata()


# ------------------------------------------------------------------ gRPC
def test_grpc_round_trip(models, fake):
  # tensorflow-serving-api is in the test extra: a missing package fails here.
  import grpc  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc as apis  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  from concurrent import futures  # pylint: disable=g-import-not-at-top

  class Servicer(apis.PredictionServiceServicer):

    def Predict(self, request, context):  # pylint: disable=invalid-name
      spec = request.model_spec
      inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
      try:
        out = fake.run(spec.name, spec.version.value if spec.HasField("version") else None,
                       spec.signature_name, inputs, strict_dtypes=True)
      except (ValueError, tf.errors.InvalidArgumentError) as e:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, getattr(e, "message", str(e)))
      response = predict_pb2.PredictResponse()
      response.model_spec.CopyFrom(spec)
      for k, v in out.items():
        response.outputs[k].CopyFrom(tf.make_tensor_proto(v))
      return response

  server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
  apis.add_PredictionServiceServicer_to_server(Servicer(), server)
  port = server.add_insecure_port("127.0.0.1:0")
  server.start()
  try:
    client = serving.Client("svg", host="127.0.0.1", grpc_port=port)
    for batch in (1, 3):
      want = keras_outputs(models["svg"], "video", batch)
      got = client.predict_next_frames(frames(batch), FUTURE, seed=SEED, protocol="grpc")
      np.testing.assert_allclose(got, want["predict_next_frames"]["frames"], atol=ATOL)
    with pytest.raises(serving.ServingError, match="(?s)INVALID_ARGUMENT.*expected 1 channel"):
      client.predict_next_frames(np.concatenate([frames(1)] * 3, -1), 2, seed=SEED,
                                 protocol="grpc")
    client.close()
    client = serving.Client("mvae", host="127.0.0.1", grpc_port=port, version=1)
    want = keras_outputs(models["mvae"], "mvae", 3)
    assert_outputs_close(client.generate(mvae_inputs(3), num_samples=2, seed=SEED,
                                         protocol="grpc"), want["generate"], "gRPC generate")
    assert_outputs_close(client.sample(3, seed=SEED, protocol="grpc"), want["sample"],
                         "gRPC sample")
    client.close()
  finally:
    server.stop(None)


def test_grpc_without_serving_api_says_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
  monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
  with pytest.raises(ImportError, match=r"pip install 'tfmvae\[serving\]'"):
    serving.build_grpc_request("m", {"x": [1.0]})
  with pytest.raises(ImportError, match="tensorflow-serving-api"):
    serving.Client("m").predict("s", {"x": [1.0]}, protocol="grpc")
