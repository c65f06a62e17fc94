//! The exported module record. It must be a `static mut`: httpd writes into it (module_index,
//! next, dynamic_load_handle), and a read-only static would make `apache2 -t` segfault.

use std::ffi::{c_int, c_ulong};

use crate::apache::{self, module};

use super::directives::COMMANDS;
use super::{hooks, util};

/// httpd's `register_hooks`: it has assigned our module index by now.
///
/// # Safety
/// Called once by httpd when the module is loaded, with the configuration pool.
unsafe extern "C" fn register_hooks(p: *mut apache::apr_pool_t) {
    // SAFETY: reading one int field of our own module struct, which httpd wrote before this call.
    util::set_module_index(unsafe { (*std::ptr::addr_of!(log_spread_module)).module_index });
    // SAFETY: forwarding httpd's call.
    unsafe { hooks::register(p) }
}

#[unsafe(no_mangle)]
pub static mut log_spread_module: module = module {
    version: apache::MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: apache::MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    name: c"mod_log_spread.c".as_ptr(),
    dynamic_load_handle: std::ptr::null_mut(),
    next: std::ptr::null_mut(),
    magic: apache::MODULE_MAGIC_COOKIE as c_ulong,
    rewrite_args: None,
    create_dir_config: None,
    merge_dir_config: None,
    create_server_config: None,
    merge_server_config: None,
    cmds: COMMANDS.0.as_ptr(),
    register_hooks: Some(register_hooks),
    flags: 0,
};
