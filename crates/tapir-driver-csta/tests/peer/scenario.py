# Test glue around the third-party CSTA-XML mock switch pyssimist (GPL-3.0, installed from
# its package registry into a venv; none of its code is copied here). pyssimist answers
# SystemStatus, SystemRegister, MonitorStart and SnapshotDevice itself; this script adds the
# behaviour tapir's tests need, per device:
#   1000  GetForwarding: immediate to 2000; GetDoNotDisturb: on.
#         SetDoNotDisturb on it stands in for the switch ending its monitor (MonitorStop).
#   1001  SnapshotDevice is answered in two SnapshotDeviceData segments (two calls).
#   1003  reported out of service right after MonitorStart; SetDoNotDisturb on it stands in
#         for the phone coming back (BackInServiceEvent).
#   1099  MonitorStart is refused (deviceOutOfService).
#   1200  GetForwarding and GetDoNotDisturb are never answered (a switch without them).
#   any   MakeCall: MakeCallResponse, ServiceInitiated, Originated, Delivered.
# Usage: scenario.py PORT SECONDS. Prints "ready" once listening.
import sys, time
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


def send_raw(srv, invoke, root, body):
    xml = '<?xml version="1.0" encoding="UTF-8"?><%s xmlns="%s">%s</%s>' % (root, ED4, body, root)
    data = xml.encode()
    frame = (len(data) + 8).to_bytes(4, "big") + b"%04d" % invoke + data
    srv.csta_endpoint.link.socket.sendall(frame)


def cross_ref(srv, device):
    return srv.get_user(device).parameters["monitorCrossRefID"]


def monitor_start(srv, msg):
    device = msg["deviceObject"]
    if device == "1099":
        send_raw(srv, msg.eventid, "CSTAErrorCode",
                 "<systemResourceAvailibility>deviceOutOfService</systemResourceAvailibility>")
        return
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
    elif device == "1000":
        send_raw(srv, 5000, "MonitorStop", "<monitorCrossRefID>%s</monitorCrossRefID>" % cross_ref(srv, device))


def make_call(srv, msg):
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


# pyssimist registers its own MonitorStart and SnapshotDevice handlers when it starts, and a
# second registration would race the first, so its methods are replaced before it starts.
_monitor_user = CstaServer.monitor_user
_snapshot_device = CstaServer.snapshot_device
CstaServer.monitor_user = staticmethod(monitor_start)
CstaServer.snapshot_device = staticmethod(snapshot_device)

port = int(sys.argv[1])
srv = CstaServer("127.0.0.1", port)
srv.serve_in_background()
srv.on("GetForwarding", get_forwarding)
srv.on("GetDoNotDisturb", get_do_not_disturb)
srv.on("SetDoNotDisturb", set_do_not_disturb)
srv.on("MakeCall", make_call)
print("ready", flush=True)
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 30)
srv.shutdown()
