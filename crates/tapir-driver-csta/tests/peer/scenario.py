# Test glue around the third-party CSTA-XML mock switch pyssimist (GPL-3.0, installed from
# its package registry into a venv; none of its code is copied here). pyssimist answers
# SystemStatus, SystemRegister, MonitorStart and SnapshotDevice itself; this script adds the
# behaviour tapir's tests need, per device:
#   1000  GetForwarding: immediate to 2000; GetDoNotDisturb: on.
#         SetDoNotDisturb on it stands in for the switch ending its monitor (MonitorStop).
#   1001  SnapshotDevice is answered in two SnapshotDeviceData segments (two calls);
#         SetDoNotDisturb on it ends its monitor as for 1000.
#   1003  reported out of service right after MonitorStart; SetDoNotDisturb on it stands in
#         for the phone coming back (BackInServiceEvent).
#   1099  MonitorStart is refused (deviceOutOfService).
#   1200  GetForwarding and GetDoNotDisturb are never answered (a switch without them).
#   15xx  (the fault tests) MakeCall answered with a callID; the call is kept here, so that
#         the snapshot of every later connection lists it until the test hangs it up.
#   1599  MakeCall is never answered (a request in flight when the link drops).
#   any   MakeCall: MakeCallResponse, ServiceInitiated, Originated, Delivered.
# Faults are driven by lines on stdin, each acknowledged with "peer: done <line>":
#   drop              close the connection (the provider must reconnect)
#   hangup DEVICE     forget DEVICE's calls without telling anyone (they end while down)
#   garbage           bytes that are not a frame
#   oversized         a 70,000-byte frame, its length written in 32 bits as pyssimist's own
#                     reader expects (more than the 16-bit header can describe)
#   malformed         a well-framed event whose XML is broken
#   incoming DEVICE CALLID   a DeliveredEvent: CALLID alerts at DEVICE
#   deaf              stop answering SystemStatus (keep-alives) on this connection
# Every message received is printed as "peer: got NAME INVOKE", every MonitorStart as
# "peer: monitor DEVICE", every new connection as "peer: accepted".
# Usage: scenario.py PORT SECONDS. Prints "ready" once listening.
import builtins, socket, sys, threading, time
import common.server as server_module
from common.server import CstaServer, SipServer

ED4 = "http://www.ecma-international.org/standards/ecma-323/csta/ed4"

# pyssimist 1.0.3 cannot run as a server unpatched (shared/reference/csta-xml.md section 7.1).
_orig = SipServer.__init__
def _patched(self, *a, **k):
    _orig(self, *a, **k)
    self.send = None
SipServer.__init__ = _patched
from csta.CstaUser import CstaUser
_uinit = CstaUser.__init__
def _upatched(self, *a, **k):
    _uinit(self, *a, **k)
    self.monitorCrossRefID = "srv"
CstaUser.__init__ = _upatched




# One write per line under a lock: pyssimist's threads and ours print at once, and print()
# writes its text and its newline separately, so two threads' lines could run together.
_say = threading.Lock()
_print = builtins.print
def _locked_print(*args, **kwargs):
    with _say:
        _print(*args, **kwargs)
builtins.print = _locked_print


def say(line):
    with _say:
        sys.stdout.write("peer: %s\n" % line)
        sys.stdout.flush()


# What outlives a connection (the switch's calls) and what belongs to one (deafness).
calls = {}  # device -> [callID]
deaf = False
sequence = 0


def send_raw(srv, invoke, root, body):
    xml = '<?xml version="1.0" encoding="UTF-8"?><%s xmlns="%s">%s</%s>' % (root, ED4, body, root)
    data = xml.encode()
    frame = (len(data) + 8).to_bytes(4, "big") + b"%04d" % invoke + data
    srv.csta_endpoint.link.socket.sendall(frame)


_parse = server_module.parseBytes
def _parse_logged(data):
    message = _parse(data)
    say("got %s %s" % (message.event, message.eventid))
    return message
server_module.parseBytes = _parse_logged


def cross_ref(srv, device):
    return srv.get_user(device).parameters["monitorCrossRefID"]


def monitor_start(srv, msg):
    device = msg["deviceObject"]
    if device == "1099":
        send_raw(srv, msg.eventid, "CSTAErrorCode",
                 "<systemResourceAvailibility>deviceOutOfService</systemResourceAvailibility>")
        return
    say("monitor " + device)
    _monitor_user(srv, msg)
    if device == "1003":
        send_raw(srv, 9999, "OutOfServiceEvent",
                 "<monitorCrossRefID>%s</monitorCrossRefID><device><deviceIdentifier>1003</deviceIdentifier></device><cause>maintenance</cause>"
                 % cross_ref(srv, device))


def call_info(call_id, device, state):
    return ("<snapshotDeviceResponseInfo><connectionIdentifier><callID>%s</callID><deviceID>%s</deviceID></connectionIdentifier>"
            "<localCallState><compoundCallState><localConnectionState>%s</localConnectionState></compoundCallState></localCallState>"
            "</snapshotDeviceResponseInfo>" % (call_id, device, state))


def snapshot_device(srv, msg):
    device = msg["snapshotObject"]
    if device.startswith("15"):
        infos = "".join(call_info(call, device, "connected") for call in calls.get(device, []))
        send_raw(srv, msg.eventid, "SnapshotDeviceResponse",
                 "<crossRefIDorSnapshotData><snapshotData>%s</snapshotData></crossRefIDorSnapshotData>" % infos)
        return
    if device != "1001":
        _snapshot_device(srv, msg)
        return
    send_raw(srv, msg.eventid, "SnapshotDeviceResponse",
             "<crossRefIDorSnapshotData><serviceCrossRefID>snap-1001</serviceCrossRefID></crossRefIDorSnapshotData>")
    for segment, (call, state) in enumerate([("C1", "alerting"), ("C2", "connected")], start=1):
        last = "true" if segment == 2 else "false"
        send_raw(srv, 9999, "SnapshotDeviceData",
                 "<serviceCrossRefID>snap-1001</serviceCrossRefID><segmentID>%d</segmentID><lastSegment>%s</lastSegment>"
                 "<snapshotData>%s</snapshotData>" % (segment, last, call_info(call, device, state)))


def get_forwarding(srv, msg):
    if msg["device"] == "1200":
        return
    items = ""
    if msg["device"] == "1000":
        items = ("<forwardListItem><forwardingType>forwardImmediate</forwardingType><forwardStatus>true</forwardStatus><forwardDN>2000</forwardDN></forwardListItem>"
                 "<forwardListItem><forwardingType>forwardBusy</forwardingType><forwardStatus>false</forwardStatus></forwardListItem>")
    send_raw(srv, msg.eventid, "GetForwardingResponse", "<forwardingList>%s</forwardingList>" % items)


def get_do_not_disturb(srv, msg):
    if msg["device"] == "1200":
        return
    on = "true" if msg["device"] == "1000" else "false"
    send_raw(srv, msg.eventid, "GetDoNotDisturbResponse", "<doNotDisturbOn>%s</doNotDisturbOn>" % on)


def set_do_not_disturb(srv, msg):
    device = msg["device"]
    send_raw(srv, msg.eventid, "SetDoNotDisturbResponse", "")
    if device == "1003":
        send_raw(srv, 9999, "BackInServiceEvent",
                 "<monitorCrossRefID>%s</monitorCrossRefID><device><deviceIdentifier>1003</deviceIdentifier></device>"
                 % cross_ref(srv, device))
    elif device in ("1000", "1001"):
        send_raw(srv, 5000, "MonitorStop", "<monitorCrossRefID>%s</monitorCrossRefID>" % cross_ref(srv, device))


def connection(call, device):
    return "<callID>%s</callID><deviceID>%s</deviceID>" % (call, device)


def make_call_kept(srv, msg, device, called):
    global sequence
    if device == "1599":
        return
    sequence += 1
    call = "K%s-%d" % (device, sequence)
    calls.setdefault(device, []).append(call)
    ref = "<monitorCrossRefID>%s</monitorCrossRefID>" % cross_ref(srv, device)
    send_raw(srv, msg.eventid, "MakeCallResponse", "<callingDevice>%s</callingDevice>" % connection(call, device))
    send_raw(srv, 9999, "ServiceInitiatedEvent",
             ref + "<initiatedConnection>%s</initiatedConnection><initiatingDevice><deviceIdentifier>%s</deviceIdentifier></initiatingDevice>"
             "<localConnectionInfo>initiated</localConnectionInfo><cause>makeCall</cause>" % (connection(call, device), device))
    send_raw(srv, 9999, "OriginatedEvent",
             ref + "<originatedConnection>%s</originatedConnection><callingDevice><deviceIdentifier>%s</deviceIdentifier></callingDevice>"
             "<calledDevice><deviceIdentifier>%s</deviceIdentifier></calledDevice><localConnectionInfo>connected</localConnectionInfo><cause>newCall</cause>"
             % (connection(call, device), device, called))
    send_raw(srv, 9999, "DeliveredEvent",
             ref + "<connection>%s</connection><alertingDevice><deviceIdentifier>%s</deviceIdentifier></alertingDevice>"
             "<callingDevice><deviceIdentifier>%s</deviceIdentifier></callingDevice><calledDevice><deviceIdentifier>%s</deviceIdentifier></calledDevice>"
             "<localConnectionInfo>connected</localConnectionInfo><cause>newCall</cause>" % (connection(call, device), called, device, called))


def make_call(srv, msg):
    if msg["callingDevice"].startswith("15"):
        make_call_kept(srv, msg, msg["callingDevice"], msg["calledDirectoryNumber"])
        return
    a = srv.get_user(msg["callingDevice"])
    b = msg["calledDirectoryNumber"]
    a.update_incoming_transactions(msg)
    srv.send("MakeCallResponse", to_user=a)
    for key, value in [("initiatingDevice", a.number), ("localConnectionInfo", "initiated"),
                       ("networkCallingDevice", a.number), ("networkCalledDevice", b), ("cause", "makeCall")]:
        a.set_parameter(key, value)
    srv.send("ServiceInitiatedEvent", to_user=a)
    for key, value in [("callingDevice", a.number), ("calledDevice", b),
                       ("localConnectionInfo", "connected"), ("cause", "newCall")]:
        a.set_parameter(key, value)
    srv.send("OriginatedEvent", to_user=a)
    for key, value in [("alertingDevice", b), ("deviceIdentifier", b), ("numberDialed", b)]:
        a.set_parameter(key, value)
    srv.send("DeliveredEvent", to_user=a)


def system_status(srv, msg):
    if deaf:
        say("ignored SystemStatus")
        return
    _system_status(srv, msg)


def accept(srv, sock):
    global deaf
    deaf = False
    _accept(srv, sock)
    say("accepted")


def service_connection(srv, key, mask):
    # pyssimist serves one client at a time and reads whichever client it accepted last; a
    # previous client's closing, noticed only after the next one was accepted, would make it
    # read the new client's socket. The old socket is closed instead.
    if key.fileobj is not srv.csta_endpoint.link.socket:
        srv.sel.unregister(key.fileobj)
        key.fileobj.close()
        return
    _service_connection(srv, key, mask)


def control(srv):
    global deaf
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        link = srv.csta_endpoint.link
        if words[0] == "drop":
            # shutdown, not close: pyssimist's makefile() keeps the descriptor open past close().
            link.socket.shutdown(socket.SHUT_RDWR)
        elif words[0] == "hangup":
            calls.pop(words[1], None)
        elif words[0] == "garbage":
            link.socket.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        elif words[0] == "oversized":
            head, tail = b'<?xml version="1.0"?><DeliveredEvent>', b"</DeliveredEvent>"
            body = head + b"x" * (70000 - 8 - len(head) - len(tail)) + tail
            link.socket.sendall((len(body) + 8).to_bytes(4, "big") + b"9999" + body)
        elif words[0] == "malformed":
            send_raw(srv, 9999, "DeliveredEvent", "<monitorCrossRefID>0</monitorCrossRefID><connection><callID>")
        elif words[0] == "incoming":
            device, call = words[1], words[2]
            send_raw(srv, 9999, "DeliveredEvent",
                     "<monitorCrossRefID>%s</monitorCrossRefID><connection>%s</connection>"
                     "<alertingDevice><deviceIdentifier>%s</deviceIdentifier></alertingDevice>"
                     "<callingDevice><deviceIdentifier>4711</deviceIdentifier></callingDevice>"
                     "<calledDevice><deviceIdentifier>%s</deviceIdentifier></calledDevice>"
                     "<localConnectionInfo>alerting</localConnectionInfo><cause>newCall</cause>"
                     % (cross_ref(srv, device), connection(call, device), device, device))
        elif words[0] == "deaf":
            deaf = True
        say("done " + line.strip())


# pyssimist registers its own MonitorStart, SnapshotDevice and SystemStatus handlers when it
# starts, and a second registration would race the first, so its methods are replaced before.
_monitor_user = CstaServer.monitor_user
_snapshot_device = CstaServer.snapshot_device
_system_status = CstaServer.system_status
_accept = CstaServer.accept_wrapper
_service_connection = CstaServer.service_connection
CstaServer.monitor_user = staticmethod(monitor_start)
CstaServer.snapshot_device = staticmethod(snapshot_device)
CstaServer.system_status = staticmethod(system_status)
CstaServer.accept_wrapper = accept
CstaServer.service_connection = service_connection

port = int(sys.argv[1])
srv = CstaServer("127.0.0.1", port)
srv.serve_in_background()
threading.Thread(target=control, args=(srv,), daemon=True).start()
srv.on("GetForwarding", get_forwarding)
srv.on("GetDoNotDisturb", get_do_not_disturb)
srv.on("SetDoNotDisturb", set_do_not_disturb)
srv.on("MakeCall", make_call)
# The answer to the MonitorStop above; pyssimist has no handler of its own for it, and its
# reader thread would end on the unhandled message.
srv.on("MonitorStopResponse", lambda srv, msg: None)
print("ready", flush=True)
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 30)
srv.shutdown()
