/* The Apache and APR declarations the module binds to (bindgen input, see build.rs). */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <mod_log_config.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <mpm_common.h>
#include <unixd.h>
#include <util_cfgtree.h>
#include <http_main.h>
