/*
 * malloc_trim(0) for the gateway (src/runtime/allocator-trim.ts), as a Node-API module.
 *
 * glibc keeps memory a process freed inside its arenas for the next allocation and gives back
 * only the top of each heap; malloc_trim also returns every whole free page inside them. Node
 * offers no way to call it, hence this file: one function, `trim()`, which returns 1 when
 * memory went back to the system, 0 when there was none to give, and -1 where the C library
 * is not glibc (musl, for one, has no malloc_trim).
 *
 * Built by scripts/build-native.sh against the headers of the Node that runs the gateway.
 * Node-API is stable across Node versions, so the file needs rebuilding only for another
 * architecture. Touches nothing but the allocator's free lists.
 */

#include <node_api.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  int released = -1;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value result;
  if (napi_create_int32(env, released, &result) != napi_ok) return NULL;
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "trim", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
