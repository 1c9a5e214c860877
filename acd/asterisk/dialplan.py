"""The contract between the server and the dialplan (``asterisk-conf/extensions.conf``).

Every context the server sends a channel to, every ``ACD_*`` channel variable the server or a
FastAGI script reads or sets, and the ``context,exten,priority`` targets the scripts hand to
``ACD_NEXT`` or a Goto live here, once. ``tests/unit/test_dialplan_contract.py`` renders the
dialplan and checks that each name is in it.
"""
from __future__ import annotations

# ---- contexts -------------------------------------------------------------------------------
HOTLINE_CONTEXT = "acd-hotline"      # callers dial the hotline: the IVR answers
QUEUE_CONTEXT = "acd-queue"          # callers wait here (registered by the FastAGI ``queue``)
AGENT_CONTEXT = "acd-agent"          # an agent's leg we originated, until bridged
CUSTOMER_CONTEXT = "acd-customer"    # a callback or outbound customer's leg
DEST_CONTEXT = "acd-dest"            # goodbye, callback notice, back to the IVR, sorry
VOICEMAIL_CONTEXT = "acd-voicemail"  # a message for a mailbox
HOLD_CONTEXT = "acd-hold"            # held callers (exten caller), waiting agent legs (agent)
SURVEY_CONTEXT = "acd-survey"        # the satisfaction survey (FastAGI ``survey``)
TRANSFER_CONTEXT = "acd-transfer"    # an IVR flow's transfer to an external number
MONITOR_CONTEXT = "acd-monitor"      # a supervisor's phone: listen, whisper or barge

#: Extensions in the contexts above that the server redirects to.
QUEUE_WAIT_EXTEN = "wait"            # a registered caller waits here, in Asterisk
QUEUE_CALLBACK_EXTEN = "callback"    # the callback key was pressed: FastAGI ``callback``
HOLD_CALLER_EXTEN = "caller"
HOLD_AGENT_EXTEN = "agent"
HOLD_TARGET_EXTEN = "target"      # a transfer or consult target's leg, originated: says it is up
DEST_HANGUP, DEST_CALLBACK, DEST_IVR, DEST_SORRY = "hangup", "callback", "ivr", "sorry"
#: The monitoring modes, each an extension of MONITOR_CONTEXT.
MONITOR_MODES = ("listen", "whisper", "barge")

#: ``context,exten,priority`` targets (Goto, ``ACD_NEXT``, an AGI script's ``EXEC Goto``).
QUEUE_TARGET = f"{QUEUE_CONTEXT},s,1"
VOICEMAIL_TARGET = f"{VOICEMAIL_CONTEXT},s,1"
TRANSFER_TARGET = f"{TRANSFER_CONTEXT},s,1"
SORRY_TARGET = f"{DEST_CONTEXT},{DEST_SORRY},1"
HANGUP_TARGET = f"{DEST_CONTEXT},{DEST_HANGUP},1"
WAIT_TARGET = f"{QUEUE_CONTEXT},{QUEUE_WAIT_EXTEN},1"


def announce_exten(position: int, minutes: int, less_than: bool) -> str:
    """The ``[acd-queue]`` extension that plays an announcement: ``P*M*L``, position P (0:
    none), an estimated wait of M minutes (0: none), L 1 for "less than"."""
    return f"{max(0, int(position))}*{max(0, int(minutes))}*{1 if less_than else 0}"

# ---- channel variables ---------------------------------------------------------------------
# A waiting caller (set by the IVR or a group's number, then by the queue script and the ACD)
GROUP = "ACD_GROUP"            # the skill group the caller waits for
PRIORITY = "ACD_PRIORITY"      # higher first
ENTERED = "ACD_ENTERED"        # when the caller entered that group's queue (set once)
DID = "ACD_DID"                # the number the caller dialled (inherited)
BRIDGED = "ACD_BRIDGED"        # set once the caller is bridged: the dialplan ends the call after
NEXT = "ACD_NEXT"              # where the queue script sends the caller next
QUEUE_TRIES = "ACD_QTRIES"     # queue script attempts while our server is away
IVR = "ACD_IVR"                # set by the IVR: the caller's keys may be on record
# Call control (on the caller)
OWNER = "ACD_OWNER"            # the agent whose call it is (hold, transfers)
HELD_AT = "ACD_HELD_AT"        # when the caller was put on hold ("" when not held)
SURVEY = "ACD_SURVEY"          # the survey follows the conversation
# An agent's or customer's leg we originated
CALL = "ACD_CALL"              # the call (the caller's Uniqueid, or ours)
AGENT = "ACD_AGENT"            # the agent
ROLE = "ACD_ROLE"              # transfer, consult or outbound
# Destinations
VM_BOX = "ACD_VM_BOX"          # the mailbox of [acd-voicemail]
SOUND = "ACD_SOUND"            # the goodbye of [acd-dest] hangup
FLOW = "ACD_FLOW"              # the IVR flow to start ([acd-dest] ivr)
TRANSFER_DIAL = "ACD_TRANSFER_DIAL"   # the dial string of [acd-transfer]
SPY = "ACD_SPY"                # the agent's leg a supervisor's phone spies on ([acd-monitor])
AGI_FIRST = "ACD_AGI_I"        # a global: which of agi.servers the dialplan tries first

#: Every variable above: the contract test checks each is named in the dialplan or read by a
#: FastAGI script from a channel the dialplan made.
VARIABLES = (GROUP, PRIORITY, ENTERED, DID, BRIDGED, NEXT, QUEUE_TRIES, IVR, OWNER, HELD_AT, SURVEY,
             CALL, AGENT, ROLE, VM_BOX, SOUND, FLOW, TRANSFER_DIAL, SPY, AGI_FIRST)
#: The queue script's AGI arguments, in order (``AGI(.../queue,${ACD_GROUP},...)``): the
#: script gets what it needs with the request, not with one GET VARIABLE each. The DID
#: comes last: a comma in it cannot shift the others.
QUEUE_ARGS = (GROUP, PRIORITY, ENTERED, BRIDGED, IVR, DID)
CONTEXTS = (HOTLINE_CONTEXT, QUEUE_CONTEXT, AGENT_CONTEXT, CUSTOMER_CONTEXT, DEST_CONTEXT,
            VOICEMAIL_CONTEXT, HOLD_CONTEXT, SURVEY_CONTEXT, TRANSFER_CONTEXT, MONITOR_CONTEXT)

# ---- dial templates --------------------------------------------------------------------------
#: An agent's phone (its PJSIP endpoint).
AGENT_DIAL = "PJSIP/{endpoint}"
#: Where a callback customer is dialled when ``outbound.dial`` is not set; ``{number}`` is a
#: checked number (:data:`acd.core.numbers.NUMBER`).
CUSTOMER_DIAL = "PJSIP/{number}@acd-trunk"
#: The loopback test customers (``[acd-testcustomer]``, tests and load runs only).
TEST_CUSTOMER_DIAL = "PJSIP/testcust{number}@acd-trunk"
