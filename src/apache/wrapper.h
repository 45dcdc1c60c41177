#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <unixd.h>
#include <apr_strings.h>
#include <apr_tables.h>

void wps_log_server(const server_rec *s, int level, const char *msg);
void wps_log_request(const request_rec *r, int level, const char *msg);
