#!/usr/bin/env bash
# One-shot, idempotent: kibana_system's password, and the role and user the appliance's
# worker ships audit events as. The role may write the audit data stream (create only:
# documents are never updated or deleted through it) and manage its template and policy.
# With FILEBEAT_PASSWORD_FILE set, also the user Filebeat ships nginx's logs as (create
# only, in logs-appliance.gateway-*).
set -euo pipefail

es=${ELASTICSEARCH_URL:-http://elasticsearch:9200}
elastic=$(cat "$ELASTIC_PASSWORD_FILE")
kibana=$(cat "$KIBANA_PASSWORD_FILE")
writer=$(cat "$WRITER_PASSWORD_FILE")

call() {  # METHOD PATH JSON
    curl -sf -u "elastic:$elastic" -X "$1" -H 'Content-Type: application/json' \
        "$es$2" -d "$3" >/dev/null
}

until curl -sf -u "elastic:$elastic" "$es/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null; do
    sleep 2
done
call POST /_security/user/kibana_system/_password "{\"password\": \"$kibana\"}"
call PUT /_security/role/appliance_audit_writer '{
  "cluster": ["manage_ilm", "manage_index_templates", "monitor"],
  "indices": [{"names": ["logs-appliance.audit-*"],
               "privileges": ["create_doc", "auto_configure", "view_index_metadata"]}]
}'
call PUT /_security/user/appliance-audit \
    "{\"password\": \"$writer\", \"roles\": [\"appliance_audit_writer\"]}"
if [ -n "${FILEBEAT_PASSWORD_FILE:-}" ]; then
    filebeat=$(cat "$FILEBEAT_PASSWORD_FILE")
    call PUT /_security/role/appliance_gateway_log_writer '{
  "cluster": ["monitor"],
  "indices": [{"names": ["logs-appliance.gateway-*"],
               "privileges": ["create_doc", "auto_configure", "view_index_metadata"]}]
}'
    call PUT /_security/user/filebeat-gateway \
        "{\"password\": \"$filebeat\", \"roles\": [\"appliance_gateway_log_writer\"]}"
    echo "elasticsearch-setup: filebeat-gateway is ready"
fi
echo "elasticsearch-setup: kibana_system and appliance-audit are ready"
