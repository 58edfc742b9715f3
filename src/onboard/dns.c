#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <string.h>

#include "tokend/dns.h"
#include "tokend/log.h"

#define ANSWER_MAX 8192

struct mx {
    int preference;
    char *host;
};

static gint mx_compare(gconstpointer a, gconstpointer b)
{
    const struct mx *x = *(struct mx *const *)a, *y = *(struct mx *const *)b;

    return x->preference - y->preference;
}

static void mx_free(gpointer p)
{
    struct mx *m = p;

    g_free(m->host);
    g_free(m);
}

/* One MX record's data: a 16-bit preference and a (compressed) name. */
static struct mx *mx_from_rr(ns_msg *msg, ns_rr *rr)
{
    char name[NS_MAXDNAME];
    struct mx *m;
    size_t len;

    if (ns_rr_rdlen(*rr) < 3 || ns_name_uncompress(ns_msg_base(*msg), ns_msg_end(*msg),
                                                   ns_rr_rdata(*rr) + 2, name, sizeof(name)) < 0)
        return NULL;
    len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        name[len - 1] = '\0';
    m = g_new0(struct mx, 1);
    m->preference = ns_get16(ns_rr_rdata(*rr));
    m->host = g_ascii_strdown(name, -1);
    return m;
}

static int parse_answer(const unsigned char *answer, int len, GPtrArray *hosts,
                        struct tokend_error *e)
{
    g_autoptr(GPtrArray) mxs = g_ptr_array_new_with_free_func(mx_free);
    ns_msg msg;
    ns_rr rr;

    if (ns_initparse(answer, len, &msg) < 0)
        return error_set(e, TOKEND_EX_DATAERR, "the DNS answer cannot be parsed");
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
        struct mx *m;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            return error_set(e, TOKEND_EX_DATAERR, "the DNS answer cannot be parsed");
        if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in)
            continue;
        if ((m = mx_from_rr(&msg, &rr)) != NULL)
            g_ptr_array_add(mxs, m);
    }
    g_ptr_array_sort(mxs, mx_compare);
    for (guint i = 0; i < mxs->len; i++) {
        struct mx *m = g_ptr_array_index(mxs, i);
        g_ptr_array_add(hosts, g_steal_pointer(&m->host));
    }
    return 0;
}

/* The resolver of resolv.conf, bounded: RES_OPTIONS and resolv.conf may
 * ask for long timeouts, many attempts and many servers. */
static int resolver_open(struct __res_state *st, struct tokend_error *e)
{
    memset(st, 0, sizeof(*st));
    if (res_ninit(st) < 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "cannot read the resolver configuration");
    st->retrans = DNS_TIMEOUT_SECONDS;
    st->retry = DNS_ATTEMPTS;
    if (st->nscount > DNS_MAX_SERVERS)
        st->nscount = DNS_MAX_SERVERS;
    st->options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
    return 0;
}

int dns_mx(const char *domain, GPtrArray **out, struct tokend_error *e)
{
    g_autoptr(GPtrArray) hosts = g_ptr_array_new_with_free_func(g_free);
    g_autofree unsigned char *answer = g_malloc(ANSWER_MAX);
    struct __res_state st;
    int len, herr;

    if (resolver_open(&st, e) < 0)
        return -1;
    len = res_nquery(&st, domain, ns_c_in, ns_t_mx, answer, ANSWER_MAX);
    herr = st.res_h_errno;
    res_nclose(&st);
    if (len < 0 && herr == TRY_AGAIN) {
        error_set(e, TOKEND_EX_TEMPFAIL,
                  "the DNS server did not answer for %s (MX) within "
                  "%d s",
                  domain, DNS_TIMEOUT_SECONDS * DNS_ATTEMPTS * DNS_MAX_SERVERS);
        error_set_hint(e, "check /etc/resolv.conf and the network, then try again");
        return -1;
    }
    if (len < 0) {
        log_verbose("DNS: %s has no MX record (%s)", domain, hstrerror(herr));
    } else if (parse_answer(answer, MIN(len, ANSWER_MAX), hosts, e) < 0) {
        return -1;
    }
    *out = g_steal_pointer(&hosts);
    return 0;
}
