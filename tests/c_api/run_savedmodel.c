/* Minimal non-Python consumer: the TF C API (what the Go bindings wrap) loads a SavedModel with tag "serve",
 * feeds one float32 input tensor and writes each requested output tensor's raw bytes to a file.
 *
 * usage: run_savedmodel EXPORT_DIR INPUT_OP INPUT.f32 D0 D1 ... -- OUTPUT_OP:INDEX OUT_FILE [OUTPUT_OP:INDEX OUT_FILE]...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tensorflow/c/c_api.h>

static void die(const char *what, TF_Status *s) {
  fprintf(stderr, "error: %s: %s\n", what, s ? TF_Message(s) : "");
  exit(1);
}

static void *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die(path, NULL);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  void *buf = malloc(*len);
  if (fread(buf, 1, *len, f) != *len) die("short read", NULL);
  fclose(f);
  return buf;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s EXPORT_DIR INPUT_OP INPUT.f32 DIMS... -- OUTPUT_OP:INDEX OUT_FILE...\n", argv[0]);
    return 2;
  }
  int sep = 4;
  while (sep < argc && strcmp(argv[sep], "--") != 0) sep++;
  int ndims = sep - 4, nout = (argc - sep - 1) / 2;
  if (sep >= argc || ndims < 1 || nout < 1) die("bad arguments", NULL);
  int64_t dims[8];
  for (int i = 0; i < ndims; i++) dims[i] = atoll(argv[4 + i]);

  TF_Status *s = TF_NewStatus();
  TF_Graph *graph = TF_NewGraph();
  TF_SessionOptions *opts = TF_NewSessionOptions();
  /* ConfigProto{intra_op_parallelism_threads: 2, inter_op_parallelism_threads: 1}: the pinned thread counts. */
  const unsigned char config[] = {0x10, 0x02, 0x28, 0x01};
  TF_SetConfig(opts, config, sizeof(config), s);
  if (TF_GetCode(s) != TF_OK) die("TF_SetConfig", s);
  const char *tags[] = {"serve"};
  TF_Session *sess = TF_LoadSessionFromSavedModel(opts, NULL, argv[1], tags, 1, graph, NULL, s);
  if (TF_GetCode(s) != TF_OK) die("TF_LoadSessionFromSavedModel", s);

  TF_Operation *in_op = TF_GraphOperationByName(graph, argv[2]);
  if (!in_op) die("input operation not found", NULL);
  size_t len;
  void *data = read_file(argv[3], &len);
  TF_Tensor *in = TF_AllocateTensor(TF_FLOAT, dims, ndims, len);
  if (TF_TensorByteSize(in) != len) die("input size does not match dims", NULL);
  memcpy(TF_TensorData(in), data, len);
  TF_Output input = {in_op, 0};

  TF_Output outputs[8];
  TF_Tensor *results[8] = {0};
  for (int i = 0; i < nout; i++) {
    char name[256];
    snprintf(name, sizeof name, "%s", argv[sep + 1 + 2 * i]);
    char *colon = strrchr(name, ':');
    int index = 0;
    if (colon) { *colon = 0; index = atoi(colon + 1); }
    TF_Operation *op = TF_GraphOperationByName(graph, name);
    if (!op) die("output operation not found", NULL);
    outputs[i] = (TF_Output){op, index};
  }
  TF_SessionRun(sess, NULL, &input, &in, 1, outputs, results, nout, NULL, 0, NULL, s);
  if (TF_GetCode(s) != TF_OK) die("TF_SessionRun", s);
  for (int i = 0; i < nout; i++) {
    FILE *f = fopen(argv[sep + 2 + 2 * i], "wb");
    fwrite(TF_TensorData(results[i]), 1, TF_TensorByteSize(results[i]), f);
    fclose(f);
    TF_DeleteTensor(results[i]);
  }
  printf("ok: %s (TF %s)\n", argv[1], TF_Version());
  TF_DeleteTensor(in);
  TF_CloseSession(sess, s);
  TF_DeleteSession(sess, s);
  TF_DeleteSessionOptions(opts);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(s);
  free(data);
  return 0;
}
