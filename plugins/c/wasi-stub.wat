;; A stand-in for the WASI preview-1 adapter that imports nothing (it only
;; uses the core module's own memory), for
;; `wasm-tools component new --adapt wasi_snapshot_preview1=wasi-stub.wasm`
;; (the build scripts compile it with `wasm-tools parse`).
;;
;; A core module built by clang or zig for wasm32-wasi imports
;; `wasi_snapshot_preview1` functions as soon as it reaches WASI (printf,
;; time(), fopen, getrandom, exit...). The official adapter turns them into
;; wasi:cli, wasi:io, wasi:clocks and wasi:filesystem imports, which
;; wasmsched refuses to link. With this stub the component imports nothing
;; but wasmsched:plugin. It behaves as a WASI with nothing in it: no
;; arguments, no environment variables, no preopened directories (so libc
;; starts up: fopen() fails, getenv() returns NULL); every other call fails
;; with ENOSYS (52) (printf() writes nothing, time() returns -1), and
;; proc_exit traps (exit(), abort()). `wasm-tools component new` keeps only
;; the functions the module imports, and leaves the stub out when it imports
;; none.
(module
  ;; The module's memory, to write the (zero) sizes into.
  (import "env" "memory" (memory 0))
  (func $no_strings (param $count i32) (param $size i32) (result i32)
    (i32.store (local.get $count) (i32.const 0))
    (i32.store (local.get $size) (i32.const 0))
    i32.const 0)
  (func (export "args_get") (param i32 i32) (result i32) i32.const 0)
  (func (export "args_sizes_get") (param i32 i32) (result i32)
    (call $no_strings (local.get 0) (local.get 1)))
  (func (export "environ_get") (param i32 i32) (result i32) i32.const 0)
  (func (export "environ_sizes_get") (param i32 i32) (result i32)
    (call $no_strings (local.get 0) (local.get 1)))
  (func (export "clock_res_get") (param i32 i32) (result i32) i32.const 52)
  (func (export "clock_time_get") (param i32 i64 i32) (result i32) i32.const 52)
  (func (export "fd_advise") (param i32 i64 i64 i32) (result i32) i32.const 52)
  (func (export "fd_allocate") (param i32 i64 i64) (result i32) i32.const 52)
  (func (export "fd_close") (param i32) (result i32) i32.const 52)
  (func (export "fd_datasync") (param i32) (result i32) i32.const 52)
  (func (export "fd_fdstat_get") (param i32 i32) (result i32) i32.const 52)
  (func (export "fd_fdstat_set_flags") (param i32 i32) (result i32) i32.const 52)
  (func (export "fd_fdstat_set_rights") (param i32 i64 i64) (result i32) i32.const 52)
  (func (export "fd_filestat_get") (param i32 i32) (result i32) i32.const 52)
  (func (export "fd_filestat_set_size") (param i32 i64) (result i32) i32.const 52)
  (func (export "fd_filestat_set_times") (param i32 i64 i64 i32) (result i32) i32.const 52)
  (func (export "fd_pread") (param i32 i32 i32 i64 i32) (result i32) i32.const 52)
  ;; EBADF (8): no preopened directory at this descriptor, nor after it.
  (func (export "fd_prestat_get") (param i32 i32) (result i32) i32.const 8)
  (func (export "fd_prestat_dir_name") (param i32 i32 i32) (result i32) i32.const 52)
  (func (export "fd_pwrite") (param i32 i32 i32 i64 i32) (result i32) i32.const 52)
  (func (export "fd_read") (param i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "fd_readdir") (param i32 i32 i32 i64 i32) (result i32) i32.const 52)
  (func (export "fd_renumber") (param i32 i32) (result i32) i32.const 52)
  (func (export "fd_seek") (param i32 i64 i32 i32) (result i32) i32.const 52)
  (func (export "fd_sync") (param i32) (result i32) i32.const 52)
  (func (export "fd_tell") (param i32 i32) (result i32) i32.const 52)
  (func (export "fd_write") (param i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "path_create_directory") (param i32 i32 i32) (result i32) i32.const 52)
  (func (export "path_filestat_get") (param i32 i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "path_filestat_set_times") (param i32 i32 i32 i32 i64 i64 i32) (result i32) i32.const 52)
  (func (export "path_link") (param i32 i32 i32 i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "path_open") (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32) i32.const 52)
  (func (export "path_readlink") (param i32 i32 i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "path_remove_directory") (param i32 i32 i32) (result i32) i32.const 52)
  (func (export "path_rename") (param i32 i32 i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "path_symlink") (param i32 i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "path_unlink_file") (param i32 i32 i32) (result i32) i32.const 52)
  (func (export "poll_oneoff") (param i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "proc_exit") (param i32) unreachable)
  (func (export "proc_raise") (param i32) (result i32) i32.const 52)
  (func (export "sched_yield") (result i32) i32.const 52)
  (func (export "random_get") (param i32 i32) (result i32) i32.const 52)
  (func (export "sock_accept") (param i32 i32 i32) (result i32) i32.const 52)
  (func (export "sock_recv") (param i32 i32 i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "sock_send") (param i32 i32 i32 i32 i32) (result i32) i32.const 52)
  (func (export "sock_shutdown") (param i32 i32) (result i32) i32.const 52)
)
