{{- /* The run viewer (`podium ui`, templates/viewer.yaml). */ -}}

{{- define "podium.viewer.name" -}}
{{- printf "%s-viewer" (include "podium.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podium.viewer.selectorLabels" -}}
app.kubernetes.io/name: podium
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: viewer
{{- end -}}

{{- /* The namespaces it shows: viewer.namespaces, else watchNamespaces; none listed = every namespace. */ -}}
{{- define "podium.viewer.namespaces" -}}
{{- toJson (.Values.viewer.namespaces | default .Values.watchNamespaces | default list) -}}
{{- end -}}

{{- /* Its Redis login, a Secret with keys username and password: the chart's own with the built-in Redis (which
creates the user from it), else viewer.redis.existingSecret. */ -}}
{{- define "podium.viewer.redisSecret" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s-redis" (include "podium.viewer.name" .) -}}
{{- else -}}
{{- .Values.viewer.redis.existingSecret -}}
{{- end -}}
{{- end -}}

{{- /* Read-only ACL of the viewer's Redis user: podium.viewer.source.ACL_RULES, which tests/unit/test_chart_viewer.py
keeps equal to this list. */ -}}
{{- define "podium.viewer.redisACL" -}}
["resetkeys", "%R~podium:*", "resetchannels", "-@all", "+@read", "-@dangerous", "+ping"]
{{- end -}}

{{- /* Extra arguments of the built-in redis-server: the viewer's user, when the viewer is on. */ -}}
{{- define "podium.viewer.redisArgs" -}}
{{- if and .Values.viewer.enabled .Values.redis.enabled -}}
{{- $acl := include "podium.viewer.redisACL" . | fromJsonArray -}}
, "--user", "podium-viewer", "on", ">$(VIEWER_REDIS_PASSWORD)"{{ range $acl }}, {{ . | quote }}{{ end }}
{{- end -}}
{{- end -}}

{{- define "podium.viewer.redisEnv" -}}
{{- if and .Values.viewer.enabled .Values.redis.enabled -}}
- name: VIEWER_REDIS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "podium.viewer.redisSecret" . }}, key: password}}
{{- end -}}
{{- end -}}

{{- /* Read-only: the runs and their Events, nothing else. */ -}}
{{- define "podium.viewer.rules" }}
  - apiGroups: [podium.dev]
    resources: [orchestrations]
    verbs: [get, list]
  - apiGroups: [""]
    resources: [events]
    verbs: [list]
{{- end -}}
