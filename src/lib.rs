//! mod_log_spread: the Apache httpd 2.4 module (built in the module issue).
