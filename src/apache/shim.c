/* The only C in mod_wps: ap_log_error/ap_log_rerror are macros around APLOG_MARK, and
 * APLOG_USE_MODULE tags each line with the module ([wps:level]) so `LogLevel wps:debug` works.
 * The module record itself is defined in Rust (a cdylib exports only Rust symbols). */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

APLOG_USE_MODULE(wps);

void wps_log_server(const server_rec *s, int level, const char *msg)
{
    ap_log_error(APLOG_MARK, level, 0, s, "%s", msg);
}

void wps_log_request(const request_rec *r, int level, const char *msg)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "%s", msg);
}
