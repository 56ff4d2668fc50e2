//! Filling TAPI's variable-size structures (`LINEDEVCAPS`, `LINECALLINFO`, ...).
//!
//! The caller's buffer arrives as a byte slice of `dwTotalSize` bytes. The fixed part is
//! written whole (a buffer smaller than it is `LINEERR_STRUCTURETOOSMALL`); strings follow it
//! as NUL-terminated UTF-16 while they fit, and `dwNeededSize` says how much the whole would
//! take, so the application can retry with more. Fields are written at `offset_of!` positions,
//! never through references, because the structures are packed.

use std::mem::{offset_of, size_of};

use tapir_wire::{CallDto, LineDto, PartyDto};
use windows_sys::Win32::Devices::Tapi::*;

use crate::devices::{CallSlot, DeviceId, LineErr, Placeholder, line_err};

/// The TSPI versions this provider speaks: 2.0 to 2.2 (3.x needs a media service provider).
pub const LOWEST_VERSION: u32 = 0x0002_0000;
pub const HIGHEST_VERSION: u32 = 0x0002_0002;

/// `LINEDEVCAPS` ends before `PermanentLineGuid` below TAPI 2.2.
const DEV_CAPS_FIXED_2_0: usize = 252;

/// Writes one variable-size structure into the caller's buffer.
pub struct VarWriter<'a> {
    buf: &'a mut [u8],
    used: usize,
    needed: usize,
}

impl<'a> VarWriter<'a> {
    /// Starts a structure whose fixed part is `fixed` bytes; keeps `dwTotalSize`.
    pub fn new(buf: &'a mut [u8], fixed: usize) -> Result<VarWriter<'a>, LineErr> {
        if buf.len() < fixed {
            return Err(line_err(LINEERR_STRUCTURETOOSMALL));
        }
        buf[4..fixed].fill(0);
        Ok(VarWriter {
            buf,
            used: fixed,
            needed: fixed,
        })
    }

    /// One `DWORD` field.
    pub fn set(&mut self, offset: usize, value: u32) {
        self.buf[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// A NUL-terminated UTF-16 string after the fixed part, with its size and offset fields;
    /// an empty string is left out (size and offset 0).
    pub fn string(&mut self, size_field: usize, offset_field: usize, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        bytes.extend_from_slice(&[0, 0]);
        self.bytes(size_field, offset_field, &bytes);
    }

    /// A run of bytes after the fixed part, with its size and offset fields.
    pub fn bytes(&mut self, size_field: usize, offset_field: usize, bytes: &[u8]) {
        self.needed += bytes.len();
        if self.used + bytes.len() > self.buf.len() {
            return;
        }
        self.buf[self.used..self.used + bytes.len()].copy_from_slice(bytes);
        self.set(size_field, bytes.len() as u32);
        self.set(offset_field, self.used as u32);
        self.used += bytes.len();
    }

    /// Writes `dwNeededSize` and `dwUsedSize`.
    pub fn finish(mut self) {
        self.set(4, self.needed as u32);
        self.set(8, self.used as u32);
    }
}

/// The caller's buffer of a variable-size structure as a slice of its `dwTotalSize`.
///
/// # Safety
/// `ptr` must point to at least `dwTotalSize` writable bytes, as TAPISRV guarantees.
pub unsafe fn caller_buffer<'a>(ptr: *mut u8) -> Result<&'a mut [u8], LineErr> {
    if ptr.is_null() {
        return Err(line_err(LINEERR_INVALPOINTER));
    }
    // SAFETY: the first DWORD of every variable-size structure is its total size.
    let total = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    if total < 12 {
        return Err(line_err(LINEERR_STRUCTURETOOSMALL));
    }
    // SAFETY: the caller guarantees `total` bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, total) })
}

/// Whether the line's PBX link can do `capability` (wire names, see `InstanceDto`).
pub fn can(capabilities: &[String], capability: &str) -> bool {
    capabilities.iter().any(|c| c == capability)
}

/// `LINEFEATURE_*` bits of a line.
pub fn line_features(capabilities: &[String]) -> u32 {
    let mut features = 0;
    if can(capabilities, "make_call") {
        features |= LINEFEATURE_MAKECALL;
    }
    if can(capabilities, "forward") {
        features |= LINEFEATURE_FORWARD | LINEFEATURE_FORWARDFWD;
    }
    if can(capabilities, "do_not_disturb") {
        features |= LINEFEATURE_FORWARDDND;
    }
    features
}

/// `LINEADDRFEATURE_*` bits of a line's one address.
pub fn address_features(capabilities: &[String]) -> u32 {
    let pairs = [
        ("make_call", LINEADDRFEATURE_MAKECALL),
        (
            "forward",
            LINEADDRFEATURE_FORWARD | LINEADDRFEATURE_FORWARDFWD,
        ),
        ("do_not_disturb", LINEADDRFEATURE_FORWARDDND),
        (
            "pickup",
            LINEADDRFEATURE_PICKUP | LINEADDRFEATURE_PICKUPDIRECT,
        ),
        ("park", LINEADDRFEATURE_UNPARK),
    ];
    pairs
        .iter()
        .filter(|(name, _)| can(capabilities, name))
        .fold(0, |all, (_, bits)| all | bits)
}

/// `LINECALLFEATURE_*` bits that calls on the line may ever offer.
pub fn possible_call_features(capabilities: &[String]) -> u32 {
    let pairs = [
        // A call made without a number is dialled with `lineDial`.
        ("make_call", LINECALLFEATURE_DIAL),
        ("accept", LINECALLFEATURE_ACCEPT),
        ("answer", LINECALLFEATURE_ANSWER),
        ("drop", LINECALLFEATURE_DROP),
        ("hold", LINECALLFEATURE_HOLD | LINECALLFEATURE_UNHOLD),
        ("swap", LINECALLFEATURE_SWAPHOLD),
        ("blind_transfer", LINECALLFEATURE_BLINDTRANSFER),
        (
            "consult_transfer",
            LINECALLFEATURE_SETUPTRANSFER | LINECALLFEATURE_COMPLETETRANSF | LINECALLFEATURE_DIAL,
        ),
        (
            "conference",
            LINECALLFEATURE_ADDTOCONF | LINECALLFEATURE_SETUPCONF,
        ),
        ("redirect", LINECALLFEATURE_REDIRECT),
        ("generate_digits", LINECALLFEATURE_GENERATEDIGITS),
        ("park", LINECALLFEATURE_PARK),
    ];
    pairs
        .iter()
        .filter(|(name, _)| can(capabilities, name))
        .fold(0, |all, (_, bits)| all | bits)
}

const CALL_STATES: u32 = LINECALLSTATE_IDLE
    | LINECALLSTATE_OFFERING
    | LINECALLSTATE_ACCEPTED
    | LINECALLSTATE_DIALTONE
    | LINECALLSTATE_DIALING
    | LINECALLSTATE_RINGBACK
    | LINECALLSTATE_BUSY
    | LINECALLSTATE_SPECIALINFO
    | LINECALLSTATE_CONNECTED
    | LINECALLSTATE_PROCEEDING
    | LINECALLSTATE_ONHOLD
    | LINECALLSTATE_CONFERENCED
    | LINECALLSTATE_ONHOLDPENDCONF
    | LINECALLSTATE_ONHOLDPENDTRANSFER
    | LINECALLSTATE_DISCONNECTED
    | LINECALLSTATE_UNKNOWN;

const PARTY_ID_FLAGS: u32 = LINECALLPARTYID_ADDRESS
    | LINECALLPARTYID_NAME
    | LINECALLPARTYID_UNKNOWN
    | LINECALLPARTYID_BLOCKED
    | LINECALLPARTYID_UNAVAIL;

const LINE_STATES: u32 = LINEDEVSTATE_OTHER
    | LINEDEVSTATE_CONNECTED
    | LINEDEVSTATE_DISCONNECTED
    | LINEDEVSTATE_INSERVICE
    | LINEDEVSTATE_OUTOFSERVICE
    | LINEDEVSTATE_REINIT
    | LINEDEVSTATE_REMOVED;

/// tapir's version in `dwProviderInfo`.
fn provider_info() -> String {
    format!("tapir {}", env!("CARGO_PKG_VERSION"))
}

/// `TSPI_lineGetDevCaps`.
pub fn dev_caps(
    buf: &mut [u8],
    version: u32,
    line: &LineDto,
    capabilities: &[String],
) -> Result<(), LineErr> {
    let fixed = if version >= 0x0002_0002 {
        size_of::<LINEDEVCAPS>()
    } else {
        DEV_CAPS_FIXED_2_0
    };
    let mut w = VarWriter::new(buf, fixed)?;
    macro_rules! at {
        ($field:ident) => {
            offset_of!(LINEDEVCAPS, $field)
        };
    }
    w.set(at!(dwPermanentLineID), line.id);
    w.set(at!(dwStringFormat), STRINGFORMAT_UNICODE);
    w.set(at!(dwAddressModes), LINEADDRESSMODE_ADDRESSID);
    w.set(at!(dwNumAddresses), 1);
    w.set(at!(dwBearerModes), LINEBEARERMODE_VOICE);
    w.set(at!(dwMediaModes), LINEMEDIAMODE_INTERACTIVEVOICE);
    if can(capabilities, "generate_digits") {
        w.set(at!(dwGenerateDigitModes), LINEDIGITMODE_DTMF);
    }
    w.set(at!(dwMaxNumActiveCalls), 1);
    w.set(at!(dwAnswerMode), LINEANSWERMODE_HOLD);
    w.set(at!(dwRingModes), 1);
    w.set(at!(dwLineStates), LINE_STATES);
    w.set(at!(dwLineFeatures), line_features(capabilities));
    if version >= 0x0002_0002 {
        // A GUID derived from the permanent line id: stable as the id is.
        let guid_at = at!(PermanentLineGuid);
        w.set(guid_at, line.id);
        w.buf[guid_at + 4..guid_at + 16].copy_from_slice(b"tapir-line\x00\x01");
    }
    w.string(
        at!(dwProviderInfoSize),
        at!(dwProviderInfoOffset),
        &provider_info(),
    );
    w.string(
        at!(dwSwitchInfoSize),
        at!(dwSwitchInfoOffset),
        &line.instance,
    );
    w.string(at!(dwLineNameSize), at!(dwLineNameOffset), &line.name);
    // "tapi/line" NUL-separated with a final NUL: the one device class lineGetID knows.
    let classes: Vec<u8> = "tapi/line\0\0"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    w.bytes(
        at!(dwDeviceClassesSize),
        at!(dwDeviceClassesOffset),
        &classes,
    );
    w.finish();
    Ok(())
}

/// `TSPI_lineGetAddressCaps` for address 0, the line's extension.
pub fn address_caps(
    buf: &mut [u8],
    device: DeviceId,
    line: &LineDto,
    capabilities: &[String],
) -> Result<(), LineErr> {
    let mut w = VarWriter::new(buf, size_of::<LINEADDRESSCAPS>())?;
    macro_rules! at {
        ($field:ident) => {
            offset_of!(LINEADDRESSCAPS, $field)
        };
    }
    w.set(at!(dwLineDeviceID), device);
    w.set(at!(dwAddressSharing), LINEADDRESSSHARING_PRIVATE);
    w.set(at!(dwAddressStates), LINEADDRESSSTATE_FORWARD);
    w.set(
        at!(dwCallInfoStates),
        LINECALLINFOSTATE_CALLERID
            | LINECALLINFOSTATE_CALLEDID
            | LINECALLINFOSTATE_CONNECTEDID
            | LINECALLINFOSTATE_REDIRECTIONID
            | LINECALLINFOSTATE_REDIRECTINGID
            | LINECALLINFOSTATE_ORIGIN
            | LINECALLINFOSTATE_REASON
            | LINECALLINFOSTATE_RELATEDCALLID
            | LINECALLINFOSTATE_APPSPECIFIC,
    );
    for field in [
        at!(dwCallerIDFlags),
        at!(dwCalledIDFlags),
        at!(dwConnectedIDFlags),
        at!(dwRedirectionIDFlags),
        at!(dwRedirectingIDFlags),
    ] {
        w.set(field, PARTY_ID_FLAGS);
    }
    w.set(at!(dwCallStates), CALL_STATES);
    w.set(
        at!(dwDialToneModes),
        LINEDIALTONEMODE_NORMAL | LINEDIALTONEMODE_UNAVAIL,
    );
    w.set(
        at!(dwBusyModes),
        LINEBUSYMODE_STATION | LINEBUSYMODE_UNAVAIL,
    );
    w.set(at!(dwSpecialInfo), LINESPECIALINFO_UNAVAIL);
    w.set(
        at!(dwDisconnectModes),
        LINEDISCONNECTMODE_NORMAL
            | LINEDISCONNECTMODE_BUSY
            | LINEDISCONNECTMODE_NOANSWER
            | LINEDISCONNECTMODE_REJECT
            | LINEDISCONNECTMODE_UNREACHABLE
            | LINEDISCONNECTMODE_BADADDRESS
            | LINEDISCONNECTMODE_CONGESTION
            | LINEDISCONNECTMODE_UNAVAIL
            | LINEDISCONNECTMODE_UNKNOWN,
    );
    w.set(at!(dwMaxNumActiveCalls), 1);
    w.set(at!(dwMaxNumOnHoldCalls), 1);
    w.set(at!(dwMaxNumOnHoldPendingCalls), 1);
    w.set(at!(dwMaxNumConference), 3);
    w.set(at!(dwMaxNumTransConf), 3);
    w.set(at!(dwAddrCapFlags), LINEADDRCAPFLAGS_DIALED);
    let call_features = possible_call_features(capabilities);
    w.set(at!(dwCallFeatures), call_features);
    let mut transfer_modes = 0;
    if call_features & LINECALLFEATURE_SETUPTRANSFER != 0 {
        transfer_modes |= LINETRANSFERMODE_TRANSFER;
    }
    if can(capabilities, "conference") {
        transfer_modes |= LINETRANSFERMODE_CONFERENCE;
    }
    w.set(at!(dwTransferModes), transfer_modes);
    if call_features & LINECALLFEATURE_PARK != 0 {
        w.set(
            at!(dwParkModes),
            LINEPARKMODE_DIRECTED | LINEPARKMODE_NONDIRECTED,
        );
    }
    if can(capabilities, "forward") {
        w.set(
            at!(dwForwardModes),
            LINEFORWARDMODE_UNCOND | LINEFORWARDMODE_BUSY | LINEFORWARDMODE_NOANSW,
        );
        w.set(at!(dwMaxForwardEntries), 3);
    }
    w.set(at!(dwAddressFeatures), address_features(capabilities));
    w.set(at!(dwConnectedModes), LINECONNECTEDMODE_ACTIVE);
    w.set(at!(dwOfferingModes), LINEOFFERINGMODE_ACTIVE);
    w.set(at!(dwAvailableMediaModes), LINEMEDIAMODE_INTERACTIVEVOICE);
    w.string(at!(dwAddressSize), at!(dwAddressOffset), &line.address);
    w.finish();
    Ok(())
}

/// Counts of a line's calls by kind, for the status structures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallCounts {
    pub active: u32,
    pub on_hold: u32,
    pub on_hold_pending: u32,
}

impl CallCounts {
    pub fn of<'a>(calls: impl Iterator<Item = &'a CallSlot>) -> CallCounts {
        let mut counts = CallCounts::default();
        for call in calls {
            match call.state().0 {
                LINECALLSTATE_ONHOLD => counts.on_hold += 1,
                LINECALLSTATE_ONHOLDPENDCONF | LINECALLSTATE_ONHOLDPENDTRANSFER => {
                    counts.on_hold_pending += 1
                }
                LINECALLSTATE_IDLE => {}
                _ => counts.active += 1,
            }
        }
        counts
    }
}

/// `TSPI_lineGetLineDevStatus`.
pub fn line_status(
    buf: &mut [u8],
    capabilities: &[String],
    in_service: bool,
    calls: CallCounts,
) -> Result<(), LineErr> {
    let mut w = VarWriter::new(buf, size_of::<LINEDEVSTATUS>())?;
    macro_rules! at {
        ($field:ident) => {
            offset_of!(LINEDEVSTATUS, $field)
        };
    }
    w.set(at!(dwNumActiveCalls), calls.active);
    w.set(at!(dwNumOnHoldCalls), calls.on_hold);
    w.set(at!(dwNumOnHoldPendCalls), calls.on_hold_pending);
    w.set(
        at!(dwLineFeatures),
        if in_service {
            line_features(capabilities)
        } else {
            0
        },
    );
    w.set(at!(dwRingMode), 1);
    w.set(at!(dwSignalLevel), 0xFFFF);
    w.set(at!(dwBatteryLevel), 0xFFFF);
    w.set(at!(dwRoamMode), LINEROAMMODE_UNAVAIL);
    let flags = if in_service {
        LINEDEVSTATUSFLAGS_CONNECTED | LINEDEVSTATUSFLAGS_INSERVICE
    } else {
        0
    };
    w.set(at!(dwDevStatusFlags), flags);
    w.set(at!(dwAvailableMediaModes), LINEMEDIAMODE_INTERACTIVEVOICE);
    w.finish();
    Ok(())
}

/// `TSPI_lineGetAddressStatus`, with the line's forwarding.
pub fn address_status(
    buf: &mut [u8],
    line: &LineDto,
    capabilities: &[String],
    in_service: bool,
    calls: CallCounts,
) -> Result<(), LineErr> {
    let mut w = VarWriter::new(buf, size_of::<LINEADDRESSSTATUS>())?;
    macro_rules! at {
        ($field:ident) => {
            offset_of!(LINEADDRESSSTATUS, $field)
        };
    }
    w.set(at!(dwNumInUse), u32::from(calls != CallCounts::default()));
    w.set(at!(dwNumActiveCalls), calls.active);
    w.set(at!(dwNumOnHoldCalls), calls.on_hold);
    w.set(at!(dwNumOnHoldPendCalls), calls.on_hold_pending);
    w.set(
        at!(dwAddressFeatures),
        if in_service {
            address_features(capabilities)
        } else {
            0
        },
    );
    let forwards = forward_entries(line);
    w.set(at!(dwForwardNumEntries), forwards.len() as u32);
    // LINEFORWARD entries, then their destination strings; offsets from the structure start.
    let entries_at = w.used;
    let entry_size = size_of::<LINEFORWARD>();
    let strings_at = entries_at + entry_size * forwards.len();
    let mut block = vec![0u8; entry_size * forwards.len()];
    let mut strings = Vec::new();
    for (i, (mode, destination)) in forwards.iter().enumerate() {
        let entry = &mut block[i * entry_size..(i + 1) * entry_size];
        let text: Vec<u8> = destination
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        let put = |entry: &mut [u8], offset: usize, value: u32| {
            entry[offset..offset + 4].copy_from_slice(&value.to_le_bytes())
        };
        put(entry, offset_of!(LINEFORWARD, dwForwardMode), *mode);
        put(
            entry,
            offset_of!(LINEFORWARD, dwDestAddressSize),
            text.len() as u32,
        );
        put(
            entry,
            offset_of!(LINEFORWARD, dwDestAddressOffset),
            (strings_at + strings.len()) as u32,
        );
        strings.extend(text);
    }
    block.extend(strings);
    if !forwards.is_empty() {
        w.bytes(at!(dwForwardSize), at!(dwForwardOffset), &block);
    }
    w.finish();
    Ok(())
}

/// The line's forwarding as `LINEFORWARDMODE_*` and destination; do-not-disturb as an
/// unconditional forward to nowhere (how TAPI 2 spells it).
fn forward_entries(line: &LineDto) -> Vec<(u32, String)> {
    let mut entries: Vec<(u32, String)> = line
        .forwards
        .iter()
        .filter_map(|forward| {
            let mode = match forward.mode.as_str() {
                "unconditional" => LINEFORWARDMODE_UNCOND,
                "busy" => LINEFORWARDMODE_BUSY,
                "no_answer" => LINEFORWARDMODE_NOANSW,
                _ => return None,
            };
            Some((mode, forward.destination.clone()))
        })
        .collect();
    if line.do_not_disturb {
        entries.push((LINEFORWARDMODE_UNCOND, String::new()));
    }
    entries
}

fn origin_bits(origin: &str) -> u32 {
    match origin {
        "outbound" => LINECALLORIGIN_OUTBOUND,
        "internal" => LINECALLORIGIN_INTERNAL,
        "external" => LINECALLORIGIN_EXTERNAL,
        "conference" => LINECALLORIGIN_CONFERENCE,
        "inbound" => LINECALLORIGIN_INBOUND,
        _ => LINECALLORIGIN_UNKNOWN,
    }
}

fn reason_bits(reason: &str) -> u32 {
    match reason {
        "direct" => LINECALLREASON_DIRECT,
        "forward_busy" => LINECALLREASON_FWDBUSY,
        "forward_no_answer" => LINECALLREASON_FWDNOANSWER,
        "forward_unconditional" => LINECALLREASON_FWDUNCOND,
        "pickup" => LINECALLREASON_PICKUP,
        "unpark" => LINECALLREASON_UNPARK,
        "redirect" => LINECALLREASON_REDIRECT,
        "call_completion" => LINECALLREASON_CALLCOMPLETION,
        "transfer" => LINECALLREASON_TRANSFER,
        "reminder" => LINECALLREASON_REMINDER,
        _ => LINECALLREASON_UNKNOWN,
    }
}

/// One party-id triple of `LINECALLINFO`.
fn party(w: &mut VarWriter<'_>, fields: [usize; 5], party: &PartyDto) {
    let [flags_at, size_at, offset_at, name_size_at, name_offset_at] = fields;
    let mut flags = 0;
    if let Some(number) = party.number.as_deref().filter(|n| !n.is_empty()) {
        flags |= LINECALLPARTYID_ADDRESS;
        w.string(size_at, offset_at, number);
    }
    if let Some(name) = party.name.as_deref().filter(|n| !n.is_empty()) {
        flags |= LINECALLPARTYID_NAME;
        w.string(name_size_at, name_offset_at, name);
    }
    w.set(
        flags_at,
        if flags == 0 {
            LINECALLPARTYID_UNKNOWN
        } else {
            flags
        },
    );
}

/// What `LINECALLINFO` shows of a call in dial tone that the PBX does not have yet: an
/// outbound call from the line itself, to nobody so far.
pub fn dialtone_call(line: &LineDto) -> CallDto {
    CallDto {
        id: 0,
        line: line.id,
        state: "dialtone".into(),
        mode: None,
        state_bits: LINECALLSTATE_DIALTONE,
        mode_bits: 0,
        origin: "outbound".into(),
        reason: "direct".into(),
        caller: PartyDto {
            number: Some(line.address.clone()),
            name: Some(line.name.clone()),
        },
        called: PartyDto::default(),
        connected: PartyDto::default(),
        redirecting: PartyDto::default(),
        redirection: PartyDto::default(),
        related: None,
        conference: None,
        features: Vec::new(),
        feature_bits: 0,
        created_at: 0,
        state_entered_at: 0,
        connected_at: None,
    }
}

/// `TSPI_lineGetCallInfo`; `related` is the handle-independent id of the related call.
pub fn call_info(
    buf: &mut [u8],
    device: DeviceId,
    call: &CallSlot,
    fallback: &CallDto,
) -> Result<(), LineErr> {
    let mut w = VarWriter::new(buf, size_of::<LINECALLINFO>())?;
    macro_rules! at {
        ($field:ident) => {
            offset_of!(LINECALLINFO, $field)
        };
    }
    let dto = call.dto.as_ref().unwrap_or(fallback);
    w.set(at!(dwLineDeviceID), device);
    w.set(at!(dwBearerMode), LINEBEARERMODE_VOICE);
    w.set(at!(dwMediaMode), LINEMEDIAMODE_INTERACTIVEVOICE);
    w.set(at!(dwAppSpecific), call.app_specific);
    // Call ids are unique per server run; TAPI's are 32 bits.
    w.set(at!(dwCallID), call.tapir.unwrap_or(0) as u32);
    w.set(at!(dwRelatedCallID), dto.related.unwrap_or(0) as u32);
    w.set(at!(dwCallStates), CALL_STATES);
    w.set(at!(dwOrigin), origin_bits(&dto.origin));
    w.set(at!(dwReason), reason_bits(&dto.reason));
    w.set(at!(dwTrunk), 0xFFFF_FFFF);
    party(
        &mut w,
        [
            at!(dwCallerIDFlags),
            at!(dwCallerIDSize),
            at!(dwCallerIDOffset),
            at!(dwCallerIDNameSize),
            at!(dwCallerIDNameOffset),
        ],
        &dto.caller,
    );
    party(
        &mut w,
        [
            at!(dwCalledIDFlags),
            at!(dwCalledIDSize),
            at!(dwCalledIDOffset),
            at!(dwCalledIDNameSize),
            at!(dwCalledIDNameOffset),
        ],
        &dto.called,
    );
    party(
        &mut w,
        [
            at!(dwConnectedIDFlags),
            at!(dwConnectedIDSize),
            at!(dwConnectedIDOffset),
            at!(dwConnectedIDNameSize),
            at!(dwConnectedIDNameOffset),
        ],
        &dto.connected,
    );
    party(
        &mut w,
        [
            at!(dwRedirectionIDFlags),
            at!(dwRedirectionIDSize),
            at!(dwRedirectionIDOffset),
            at!(dwRedirectionIDNameSize),
            at!(dwRedirectionIDNameOffset),
        ],
        &dto.redirection,
    );
    party(
        &mut w,
        [
            at!(dwRedirectingIDFlags),
            at!(dwRedirectingIDSize),
            at!(dwRedirectingIDOffset),
            at!(dwRedirectingIDNameSize),
            at!(dwRedirectingIDNameOffset),
        ],
        &dto.redirecting,
    );
    w.finish();
    Ok(())
}

/// `TSPI_lineGetCallStatus`; `can_conference` says whether the PBX joins conferences, so a
/// call that can start a consultation can start a conference (`lineSetupConference`) too.
pub fn call_status(buf: &mut [u8], call: &CallSlot, can_conference: bool) -> Result<(), LineErr> {
    let mut w = VarWriter::new(buf, size_of::<LINECALLSTATUS>())?;
    macro_rules! at {
        ($field:ident) => {
            offset_of!(LINECALLSTATUS, $field)
        };
    }
    let (state, mode) = call.state();
    w.set(at!(dwCallState), state);
    w.set(at!(dwCallStateMode), mode);
    let features = match (&call.dto, call.placeholder) {
        (Some(dto), _) => dto.feature_bits,
        // A call in dial tone can be dialled or dropped; a conference placeholder dropped
        // (its consultation is added from the consultation's side).
        (None, Some(Placeholder::Dialtone { .. } | Placeholder::Consultation { .. })) => {
            LINECALLFEATURE_DIAL | LINECALLFEATURE_DROP
        }
        (None, Some(Placeholder::Conference { .. })) => LINECALLFEATURE_DROP,
        (None, None) => 0,
    };
    let features = if can_conference && features & LINECALLFEATURE_SETUPTRANSFER != 0 {
        features | LINECALLFEATURE_SETUPCONF
    } else {
        features
    };
    w.set(at!(dwCallFeatures), features);
    let entered = call.dto.as_ref().map(|d| d.state_entered_at).unwrap_or(0);
    let time_at = at!(tStateEntryTime);
    for (i, part) in system_time(entered).into_iter().enumerate() {
        w.buf[time_at + 2 * i..time_at + 2 * i + 2].copy_from_slice(&part.to_le_bytes());
    }
    w.finish();
    Ok(())
}

/// A `SYSTEMTIME` (UTC) for milliseconds since the Unix epoch: year, month, weekday, day,
/// hour, minute, second, millisecond.
fn system_time(millis: u64) -> [u16; 8] {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
    else {
        return [0; 8];
    };
    [
        at.year() as u16,
        u8::from(at.month()) as u16,
        at.weekday().number_days_from_sunday() as u16,
        at.day() as u16,
        at.hour() as u16,
        at.minute() as u16,
        at.second() as u16,
        at.millisecond(),
    ]
}

/// TAPISRV's `VARSTRING` for where a non-directed park put the call: checked when the
/// request comes, written just before its completion (TAPISRV keeps it until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaceBuffer(usize);

impl PlaceBuffer {
    /// # Safety
    /// `ptr` is null or points to a `VARSTRING` of `dwTotalSize` bytes that stays valid until
    /// the request it belongs to completes.
    pub unsafe fn new(ptr: *mut u8) -> Result<PlaceBuffer, LineErr> {
        // SAFETY: as the caller guarantees.
        let buf = unsafe { caller_buffer(ptr)? };
        if buf.len() < size_of::<VARSTRING>() {
            return Err(line_err(LINEERR_STRUCTURETOOSMALL));
        }
        Ok(PlaceBuffer(ptr as usize))
    }

    /// Writes `place`, with `dwNeededSize` when it does not fit; only before the completion
    /// of the request the buffer came with.
    pub fn write(self, place: &str) {
        // SAFETY: checked in `new`, whose caller keeps the buffer until that completion.
        if let Ok(buf) = unsafe { caller_buffer(self.0 as *mut u8) } {
            let _ = var_string(buf, place);
        }
    }
}

/// A `VARSTRING` holding `text` as UTF-16 (`lineGetID`, a non-directed park's place).
pub fn var_string(buf: &mut [u8], text: &str) -> Result<(), LineErr> {
    let mut w = VarWriter::new(buf, size_of::<VARSTRING>())?;
    w.set(offset_of!(VARSTRING, dwStringFormat), STRINGFORMAT_UNICODE);
    w.string(
        offset_of!(VARSTRING, dwStringSize),
        offset_of!(VARSTRING, dwStringOffset),
        text,
    );
    w.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> LineDto {
        LineDto {
            id: 42,
            instance: "sim".into(),
            address: "201".into(),
            name: "Ada Lovelace (201)".into(),
            status: "in_service".into(),
            forwards: Vec::new(),
            do_not_disturb: true,
        }
    }

    fn read(buf: &[u8], offset: usize) -> u32 {
        u32::from_le_bytes(buf[offset..offset + 4].try_into().unwrap())
    }

    fn text(buf: &[u8], size_at: usize, offset_at: usize) -> String {
        let (size, offset) = (read(buf, size_at) as usize, read(buf, offset_at) as usize);
        let units: Vec<u16> = buf[offset..offset + size]
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .take_while(|u| *u != 0)
            .collect();
        String::from_utf16(&units).unwrap()
    }

    fn buffer(total: usize) -> Vec<u8> {
        let mut buf = vec![0xAAu8; total];
        buf[..4].copy_from_slice(&(total as u32).to_le_bytes());
        buf
    }

    #[test]
    fn dev_caps_fit_the_negotiated_version_and_say_what_they_need() {
        let caps = vec!["make_call".to_owned(), "do_not_disturb".to_owned()];
        let fixed = size_of::<LINEDEVCAPS>();
        let mut small = buffer(fixed - 1);
        assert_eq!(
            dev_caps(&mut small, HIGHEST_VERSION, &line(), &caps),
            Err(line_err(LINEERR_STRUCTURETOOSMALL))
        );
        // TAPI 2.0's fixed part is shorter: the same buffer is enough there.
        assert_eq!(dev_caps(&mut small, LOWEST_VERSION, &line(), &caps), Ok(()));

        let mut exact = buffer(fixed);
        dev_caps(&mut exact, HIGHEST_VERSION, &line(), &caps).unwrap();
        let needed = read(&exact, 4) as usize;
        assert!(needed > fixed, "the strings need room: {needed}");
        assert_eq!(read(&exact, 8) as usize, fixed, "nothing past the buffer");
        assert_eq!(read(&exact, offset_of!(LINEDEVCAPS, dwLineNameSize)), 0);

        let mut roomy = buffer(needed);
        dev_caps(&mut roomy, HIGHEST_VERSION, &line(), &caps).unwrap();
        assert_eq!(read(&roomy, 8) as usize, needed);
        assert_eq!(read(&roomy, 0) as usize, needed, "dwTotalSize is kept");
        assert_eq!(read(&roomy, offset_of!(LINEDEVCAPS, dwPermanentLineID)), 42);
        let name = text(
            &roomy,
            offset_of!(LINEDEVCAPS, dwLineNameSize),
            offset_of!(LINEDEVCAPS, dwLineNameOffset),
        );
        assert_eq!(name, "Ada Lovelace (201)");
        let features = read(&roomy, offset_of!(LINEDEVCAPS, dwLineFeatures));
        assert_eq!(features, LINEFEATURE_MAKECALL | LINEFEATURE_FORWARDDND);
    }

    #[test]
    fn address_status_lists_do_not_disturb_as_a_forward_to_nowhere() {
        let mut line = line();
        line.forwards.push(tapir_wire::ForwardDto {
            mode: "busy".into(),
            destination: "+49301234".into(),
        });
        let mut buf = buffer(512);
        address_status(&mut buf, &line, &[], true, CallCounts::default()).unwrap();
        assert_eq!(
            read(&buf, offset_of!(LINEADDRESSSTATUS, dwForwardNumEntries)),
            2
        );
        let first = read(&buf, offset_of!(LINEADDRESSSTATUS, dwForwardOffset)) as usize;
        assert_eq!(
            read(&buf, first + offset_of!(LINEFORWARD, dwForwardMode)),
            LINEFORWARDMODE_BUSY
        );
        let destination = text(
            &buf,
            first + offset_of!(LINEFORWARD, dwDestAddressSize),
            first + offset_of!(LINEFORWARD, dwDestAddressOffset),
        );
        assert_eq!(destination, "+49301234");
        let second = first + size_of::<LINEFORWARD>();
        assert_eq!(
            read(&buf, second + offset_of!(LINEFORWARD, dwForwardMode)),
            LINEFORWARDMODE_UNCOND
        );
    }

    #[test]
    fn a_park_place_is_written_or_its_needed_size_given() {
        let mut tiny = vec![0u8; 16];
        tiny[..4].copy_from_slice(&16u32.to_le_bytes());
        // SAFETY: a buffer of dwTotalSize bytes.
        let refused = unsafe { PlaceBuffer::new(tiny.as_mut_ptr()) };
        assert_eq!(refused, Err(line_err(LINEERR_STRUCTURETOOSMALL)));
        assert_eq!(
            unsafe { PlaceBuffer::new(std::ptr::null_mut()) },
            Err(line_err(LINEERR_INVALPOINTER))
        );

        let fixed = size_of::<VARSTRING>();
        let mut exact = vec![0u8; fixed];
        exact[..4].copy_from_slice(&(fixed as u32).to_le_bytes());
        unsafe { PlaceBuffer::new(exact.as_mut_ptr()) }
            .unwrap()
            .write("701");
        assert_eq!(
            read(&exact, offset_of!(VARSTRING, dwNeededSize)) as usize,
            fixed + 8
        );
        assert_eq!(read(&exact, offset_of!(VARSTRING, dwStringSize)), 0);

        let mut roomy = vec![0u8; 64];
        roomy[..4].copy_from_slice(&64u32.to_le_bytes());
        unsafe { PlaceBuffer::new(roomy.as_mut_ptr()) }
            .unwrap()
            .write("701");
        assert_eq!(
            read(&roomy, offset_of!(VARSTRING, dwStringFormat)),
            STRINGFORMAT_UNICODE
        );
        let place = text(
            &roomy,
            offset_of!(VARSTRING, dwStringSize),
            offset_of!(VARSTRING, dwStringOffset),
        );
        assert_eq!(place, "701");
    }

    #[test]
    fn state_entry_times_are_utc_system_times() {
        // 2026-11-23 16:40:05.250 UTC, a Monday.
        assert_eq!(
            system_time(1_795_452_005_250),
            [2026, 11, 1, 23, 16, 40, 5, 250]
        );
    }
}
