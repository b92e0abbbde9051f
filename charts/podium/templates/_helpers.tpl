{{- define "podium.fullname" -}}
{{- printf "%s-%s" .Release.Name "podium" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podium.labels" -}}
app.kubernetes.io/name: podium
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "podium.selectorLabels" -}}
app.kubernetes.io/name: podium
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "podium.redisHost" -}}
{{- printf "%s-redis" (include "podium.fullname" .) -}}
{{- end -}}

{{- define "podium.redisURL" -}}
{{- if .Values.redis.url -}}
{{- .Values.redis.url -}}
{{- else -}}
{{- printf "redis://%s.%s.svc:6379/0" (include "podium.redisHost" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "podium.redisSecret" -}}
{{- default (printf "%s-redis" (include "podium.fullname" .)) .Values.redis.existingSecret -}}
{{- end -}}
