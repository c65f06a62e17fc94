//! Generates the Apache/APR bindings from the headers installed on this machine, so the module
//! matches the local httpd's ABI (module struct layout, `request_rec`, MMN).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi_wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=APXS");

    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".to_owned());
    let apache_include = query(&apxs, &["-q", "INCLUDEDIR"]).unwrap_or_else(|why| {
        fail(&format!(
            "cannot ask `{apxs} -q INCLUDEDIR` for Apache's headers ({why}); install apache2-dev \
             (Debian/Ubuntu: apt-get install apache2-dev) or set APXS to your apxs"
        ))
    });
    let apr_cflags =
        query("pkg-config", &["--cflags", "apr-1", "apr-util-1"]).unwrap_or_else(|why| {
            fail(&format!(
                "cannot ask `pkg-config --cflags apr-1 apr-util-1` ({why}); install apache2-dev \
             (it pulls libapr1-dev and libaprutil1-dev) and pkg-config"
            ))
        });
    if !PathBuf::from(&apache_include).join("httpd.h").exists() {
        fail(&format!(
            "{apache_include}/httpd.h not found; install apache2-dev"
        ));
    }

    let mut builder = bindgen::Builder::default()
        .header("src/ffi_wrapper.h")
        .clang_arg(format!("-I{apache_include}"))
        .allowlist_function("ap_.*|apr_.*")
        .allowlist_type("module_struct|command_struct|request_rec|server_rec|conn_rec|ap_errorlog_info|ap_log_.*|apr_.*|cmd_parms.*|process_rec|ap_directive_t|unixd_config_rec")
        .allowlist_var("ap_conftree|ap_unixd_config|ap_server_conf|AP_.*|APR_.*|APLOG_.*|MODULE_MAGIC_.*|OK|DECLINED|DONE|RSRC_CONF|OR_.*|ACCESS_CONF|NOT_IN_.*|GLOBAL_ONLY|HTTP_.*|M_GET")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false);
    for flag in apr_cflags.split_whitespace() {
        builder = builder.clang_arg(flag);
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        fail(&format!(
            "bindgen could not read Apache's headers: {e}. It needs libclang \
             (Debian/Ubuntu: apt-get install libclang-dev) and apache2-dev"
        ))
    });
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("apache_bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write the bindings: {e}")));
}

fn query(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("exit status {}", output.status));
    }
    let text = String::from_utf8(output.stdout).map_err(|e| e.to_string())?;
    Ok(text.trim().to_owned())
}

fn fail(message: &str) -> ! {
    eprintln!("error: mod_log_spread build: {message}");
    std::process::exit(1);
}
