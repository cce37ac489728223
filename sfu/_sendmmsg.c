/*
 * sfu._sendmmsg: many UDP datagrams in one system call (Linux sendmmsg(2)).
 *
 * send_batch(fd, family, packets) -> int
 *
 *   packets: a list of (bytes, (host, port)) tuples, host a numeric address of
 *   ``family`` (AF_INET or AF_INET6). Sends them in order, 64 per call, and
 *   returns how many were sent. A full socket buffer (EAGAIN) stops the batch
 *   (the rest is dropped, as the network would drop it); any other error
 *   drops only the datagram it concerns. sfu/udp_batch.py has the same
 *   behaviour in pure Python, and tests run both.
 *
 * No key, no SRTP here: the datagrams are already protected.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64

static int fill_address(PyObject *addr, int family, struct sockaddr_storage *out, socklen_t *len)
{
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2) {
        PyErr_SetString(PyExc_TypeError, "an address is a (host, port) tuple");
        return -1;
    }
    const char *host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(addr, 0));
    if (host == NULL)
        return -1;
    long port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (port == -1 && PyErr_Occurred())
        return -1;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_OverflowError, "port must be 0-65535");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((unsigned short)port);
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "not an IPv4 address: %s", host);
            return -1;
        }
        *len = sizeof(*sin);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((unsigned short)port);
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "not an IPv6 address: %s", host);
            return -1;
        }
        *len = sizeof(*sin6);
    } else {
        PyErr_SetString(PyExc_ValueError, "family must be AF_INET or AF_INET6");
        return -1;
    }
    return 0;
}

static PyObject *send_batch(PyObject *self, PyObject *args)
{
    (void)self;
    int fd, family;
    PyObject *packets;
    if (!PyArg_ParseTuple(args, "iiO!", &fd, &family, &PyList_Type, &packets))
        return NULL;
    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
    struct sockaddr_storage addrs[BATCH];
    Py_ssize_t total = PyList_GET_SIZE(packets);
    Py_ssize_t sent = 0;
    Py_ssize_t next = 0;
    /* the list keeps every bytes object alive while its buffer is in use */
    Py_INCREF(packets);
    while (next < total) {
        int count = 0;
        for (; next < total && count < BATCH && next < PyList_GET_SIZE(packets); next++, count++) {
            PyObject *item = PyList_GET_ITEM(packets, next);
            char *data;
            Py_ssize_t size;
            socklen_t addr_len;
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "a packet is a (bytes, address) tuple");
                goto error;
            }
            if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(item, 0), &data, &size) < 0)
                goto error;
            if (fill_address(PyTuple_GET_ITEM(item, 1), family, &addrs[count], &addr_len) < 0)
                goto error;
            iovs[count].iov_base = data;
            iovs[count].iov_len = (size_t)size;
            memset(&msgs[count], 0, sizeof(msgs[count]));
            msgs[count].msg_hdr.msg_name = &addrs[count];
            msgs[count].msg_hdr.msg_namelen = addr_len;
            msgs[count].msg_hdr.msg_iov = &iovs[count];
            msgs[count].msg_hdr.msg_iovlen = 1;
        }
        int done = 0;
        while (done < count) {
            int result;
            Py_BEGIN_ALLOW_THREADS
            result = sendmmsg(fd, msgs + done, (unsigned int)(count - done), 0);
            Py_END_ALLOW_THREADS
            if (result < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    goto full;
                done += 1; /* this datagram cannot go (e.g. an ICMP error reported): drop it */
                continue;
            }
            done += result;
            sent += result;
        }
    }
full:
    Py_DECREF(packets);
    return PyLong_FromSsize_t(sent);
error:
    Py_DECREF(packets);
    return NULL;
}

static PyMethodDef methods[] = {
    {"send_batch", send_batch, METH_VARARGS,
     "send_batch(fd, family, packets) -> int: send (bytes, (host, port)) datagrams with sendmmsg"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sfu._sendmmsg", "Batched UDP egress with sendmmsg(2).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sendmmsg(void) { return PyModule_Create(&module); }
